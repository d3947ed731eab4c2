// Gravity's error types. A bad client command gets a protocol reply, never an exception:
// these are for our bugs and for the environment (flags, config, network).

/** The base of every error Gravity throws; `code` is stable for programs to match on. */
export class GravityError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "GravityError";
    this.code = code;
  }
}

/** A command-line flag or environment variable with a bad value. The CLI prints it and exits 2. */
export class UsageError extends GravityError {
  constructor(message: string) {
    super("EUSAGE", message);
    this.name = "UsageError";
  }
}

/** A configuration file field that is missing or wrong: names the file, the field and what was expected. */
export class ConfigError extends GravityError {
  readonly file: string;
  readonly field: string;
  readonly expected: string;

  constructor(file: string, field: string, expected: string, options?: { cause?: unknown }) {
    super("ECONFIG", `${file}: ${field}: expected ${expected}`, options);
    this.name = "ConfigError";
    this.file = file;
    this.field = field;
    this.expected = expected;
  }
}

/** A request the client refuses to send: a bad key, a flag or number out of range. Nothing was sent. */
export class InvalidRequestError extends GravityError {
  constructor(message: string) {
    super("EINVAL", message);
    this.name = "InvalidRequestError";
  }
}

/** Bytes from a server that are not a memcached reply, or not the reply the request expects. */
export class ProtocolError extends GravityError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("EPROTOCOL", message, options);
    this.name = "ProtocolError";
  }
}

/** No reply within `timeoutMs`; the request may or may not have been applied. */
export class TimeoutError extends GravityError {
  readonly timeoutMs: number;

  constructor(message: string, timeoutMs: number, options?: { cause?: unknown }) {
    super("ETIMEDOUT", message, options);
    this.name = "TimeoutError";
    this.timeoutMs = timeoutMs;
  }
}

/**
 * A destination that cannot be reached, or a connection lost or reset with the request pending
 * (then it may or may not have been applied). `destination` is "host:port".
 */
export class ConnectionError extends GravityError {
  readonly destination: string;

  constructor(destination: string, message: string, options?: { cause?: unknown }) {
    super("ECONNECTION", `${destination}: ${message}`, options);
    this.name = "ConnectionError";
    this.destination = destination;
  }
}

/** Too many requests pending on a connection: refused at once rather than queued without bound. */
export class OverloadedError extends GravityError {
  constructor(message: string) {
    super("EOVERLOADED", message);
    this.name = "OverloadedError";
  }
}

/** What a server's error reply said: ERROR (unknown command), CLIENT_ERROR or SERVER_ERROR. */
export const ServerErrorKind = {
  Error: "ERROR",
  ClientError: "CLIENT_ERROR",
  ServerError: "SERVER_ERROR",
} as const;
export type ServerErrorKind = (typeof ServerErrorKind)[keyof typeof ServerErrorKind];

/** The server answered with an error line; `text` is its message (e.g. "object too large for cache"). */
export class ServerError extends GravityError {
  readonly kind: ServerErrorKind;
  readonly text: string;

  constructor(kind: ServerErrorKind, text: string) {
    super("ESERVER", text === "" ? kind : `${kind} ${text}`);
    this.name = "ServerError";
    this.kind = kind;
    this.text = text;
  }
}

/** A destination marked down after failing in a row (TKO): requests fail fast until a probe revives it. */
export class DestinationDownError extends GravityError {
  readonly destination: string;

  constructor(destination: string) {
    super("EDOWN", `${destination}: marked down after consecutive failures`);
    this.name = "DestinationDownError";
    this.destination = destination;
  }
}

/** Every destination a route could use is down or failed. */
export class NoHealthyDestinationError extends GravityError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("ENODEST", message, options);
    this.name = "NoHealthyDestinationError";
  }
}

/**
 * Whether `error` says a request did not (or may not have) reached its destination: it could not
 * connect or lost the connection, timed out, or the destination is marked down. What sends a
 * request to a gutter (src/router/handles/gutter.ts) and a delete to the spool (spooling-sender.ts).
 */
export function isOutage(error: unknown): boolean {
  return (
    error instanceof ConnectionError || error instanceof TimeoutError || error instanceof DestinationDownError
  );
}
