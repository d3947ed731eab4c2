// The replies memcached sends for requests it refuses (proto_text.c, proto_parser.c), as the bytes
// the request parser hands to RequestSink.onError. Shared and immutable: never modify one.
import { bytes } from "./request-bytes.ts";

const reply = (text: string) => bytes(`${text}\r\n`);

/** Nothing: memcached closes the connection without a word. */
export const NO_BYTES = new Uint8Array(0);
export const ERROR = reply("ERROR");
export const SHUTDOWN_NOT_ENABLED = reply("ERROR: shutdown not enabled");
export const BAD_FORMAT = reply("CLIENT_ERROR bad command line format");
export const DELETE_USAGE = reply("CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]");
export const INVALID_EXPTIME = reply("CLIENT_ERROR invalid exptime argument");
export const INVALID_DELTA_ARGUMENT = reply("CLIENT_ERROR invalid numeric delta argument");
export const BAD_DATA_CHUNK = reply("CLIENT_ERROR bad data chunk");
export const TOO_LARGE = reply("SERVER_ERROR object too large for cache");
export const MG_FLAGS_TOO_LONG = reply("CLIENT_ERROR options flags are too long");
export const FLAGS_TOO_LONG = reply("CLIENT_ERROR options flags too long");
export const BAD_TOKEN = reply("CLIENT_ERROR bad token in command line format");
export const DUPLICATE_FLAG = reply("CLIENT_ERROR duplicate flag");
export const INVALID_FLAG = reply("CLIENT_ERROR invalid flag");
export const DECODING_KEY = reply("CLIENT_ERROR error decoding key");
export const M_TOKEN_LENGTH = reply("CLIENT_ERROR incorrect length for M token");
export const INVALID_INITIAL = reply("CLIENT_ERROR invalid numeric initial value");
export const INVALID_DELTA_VALUE = reply("CLIENT_ERROR invalid numeric delta value");
export const OPAQUE_TOO_LONG = reply("CLIENT_ERROR opaque token too long");
export const MS_INVALID_MODE = reply("CLIENT_ERROR invalid mode for ms M token");
export const MA_INVALID_MODE = reply("CLIENT_ERROR invalid mode for ma M token");
export const INVALID_OR_DUPLICATE_FLAG = reply("CLIENT_ERROR invalid or duplicate flag");
