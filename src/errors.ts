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
