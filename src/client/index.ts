// The public API of the TypeScript client.

export {
  ConnectionError,
  GravityError,
  InvalidRequestError,
  OverloadedError,
  ProtocolError,
  ServerError,
  ServerErrorKind,
  TimeoutError,
} from "../errors.ts";
export {
  CasResult,
  Client,
  type ClientOptions,
  createClient,
  type GetsResult,
  type Key,
  parseServer,
  type ServerAddress,
  type SetOptions,
  type Value,
} from "./client.ts";
