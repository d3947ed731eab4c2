// Requests of the memcached binary protocol (memcached protocol_binary.h) as the router holds them:
// a Request (request.ts) whose op, fields and `raw` are the meta equivalent a leaf understands,
// with the binary frame's opcode and opaque kept for the reply (binary-reply-encoder.ts).
import { type Op, Request } from "./request.ts";

/** The binary opcodes, quiet and loud (memcached protocol_binary_command). */
export const BinaryOp = {
  Get: 0x00,
  Set: 0x01,
  Add: 0x02,
  Replace: 0x03,
  Delete: 0x04,
  Increment: 0x05,
  Decrement: 0x06,
  Quit: 0x07,
  Flush: 0x08,
  GetQ: 0x09,
  Noop: 0x0a,
  Version: 0x0b,
  GetK: 0x0c,
  GetKQ: 0x0d,
  Append: 0x0e,
  Prepend: 0x0f,
  Stat: 0x10,
  SetQ: 0x11,
  AddQ: 0x12,
  ReplaceQ: 0x13,
  DeleteQ: 0x14,
  IncrementQ: 0x15,
  DecrementQ: 0x16,
  QuitQ: 0x17,
  FlushQ: 0x18,
  AppendQ: 0x19,
  PrependQ: 0x1a,
  Verbosity: 0x1b,
  Touch: 0x1c,
  Gat: 0x1d,
  GatQ: 0x1e,
  SaslListMechs: 0x20,
  SaslAuth: 0x21,
  SaslStep: 0x22,
  GatK: 0x23,
  GatKQ: 0x24,
} as const;

/** protocol_binary_response_status: the statuses the router sends. */
export const BinaryStatus = {
  Success: 0x00,
  KeyNotFound: 0x01,
  KeyExists: 0x02,
  TooLarge: 0x03,
  InvalidArguments: 0x04,
  NotStored: 0x05,
  DeltaBadValue: 0x06,
  UnknownCommand: 0x81,
  OutOfMemory: 0x82,
  /** PROTOCOL_BINARY_RESPONSE_AUTH_ERROR: SASL is on and the connection has not authenticated. */
  AuthError: 0x20,
  /** PROTOCOL_BINARY_RESPONSE_EINTERNAL: the router could not reach a leaf that answers. */
  InternalError: 0x84,
} as const;

/** A binary request: the meta Request the route tree sees, and what its reply must echo. */
export class BinaryRequest extends Request {
  /** The opcode as sent (echoed in the reply). */
  opcode: number;
  /** The opcode with its quiet variant folded into the loud one (getkq -> getk). */
  command: number;
  /** A quiet opcode: its success (a get's miss) is not answered; its errors are. */
  quiet: boolean;
  /** The frame's opaque, an unsigned 32-bit number echoed in the reply. */
  opaque: number;

  constructor(op: Op, opcode: number, command: number, opaque: number) {
    super(op);
    this.opcode = opcode;
    this.command = command;
    this.quiet = opcode !== command;
    this.opaque = opaque;
  }
}
