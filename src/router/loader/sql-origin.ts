// A PostgreSQL or MySQL origin through Bun's SQL client: one parameterised query (`$1` for
// PostgreSQL, `?` for MySQL), the key bound as UTF-8 text. The first column of the first row is
// the value; no row, or a NULL there, is not found. Connections come from a pool of at most
// `maxConnections`; a load past its timeout is cancelled (PostgreSQL stops the query; MySQL lets a
// query already sent run to its end).
import { SQL } from "bun";
import {
  abortReason,
  columnBytes,
  keyText,
  type Origin,
  OriginError,
  reasonOf,
  throwIfAborted,
} from "./origin.ts";

export interface SqlOriginOptions {
  /** `postgres://` (or `postgresql://`), `mysql://` or `mariadb://`, with credentials if needed. */
  url: string;
  /** A query with one parameter, e.g. `SELECT value FROM items WHERE key = $1`. */
  query: string;
  /** The pool's size (default 10). */
  maxConnections?: number;
  /** How long to wait for a new connection (default 5000 ms; Bun counts whole seconds, rounded up). */
  connectTimeoutMs?: number;
  /** Idle connections close after this long (default 60 s). */
  idleTimeoutSeconds?: number;
}

const ADAPTERS: Record<string, "postgres" | "mysql" | "mariadb"> = {
  "postgres:": "postgres",
  "postgresql:": "postgres",
  "mysql:": "mysql",
  "mariadb:": "mariadb",
};

/** `url` without its user and password: what error messages may show. */
export function redactedUrl(url: string): string {
  const parsed = new URL(url);
  return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
}

export class SqlOrigin implements Origin {
  readonly name: string;
  readonly maxConnections: number;
  private readonly sql: SQL;
  private readonly query: string;
  private closed = false;

  constructor(options: SqlOriginOptions) {
    const protocol = new URL(options.url).protocol;
    const adapter = ADAPTERS[protocol];
    if (adapter === undefined) {
      throw new RangeError(`SQL origin URL must be postgres://, mysql:// or mariadb://, got ${protocol}//`);
    }
    const maxConnections = options.maxConnections ?? 10;
    if (!Number.isInteger(maxConnections) || maxConnections < 1)
      throw new RangeError(`maxConnections must be a positive integer, got ${maxConnections}`);
    this.name = redactedUrl(options.url);
    this.maxConnections = maxConnections;
    this.query = options.query;
    this.sql = new SQL({
      url: options.url,
      adapter,
      max: maxConnections,
      connectionTimeout: Math.ceil((options.connectTimeoutMs ?? 5000) / 1000),
      idleTimeout: options.idleTimeoutSeconds ?? 60,
    });
  }

  async load(key: Uint8Array, signal: AbortSignal): Promise<Uint8Array | null> {
    throwIfAborted(signal, this.name);
    if (this.closed) throw new OriginError(this.name, "origin is closed");
    const query = this.sql.unsafe(this.query, [keyText(key, this.name)]).values();
    // The listener must not return the Query: Bun then starts it again as a promise whose
    // cancellation error nobody handles (an unhandled rejection).
    const cancel = () => {
      query.cancel();
    };
    signal.addEventListener("abort", cancel, { once: true });
    let rows: unknown[][];
    try {
      rows = (await query) as unknown[][];
    } catch (error) {
      if (signal.aborted) throw abortReason(signal, this.name);
      throw new OriginError(this.name, reasonOf(error), { cause: error });
    } finally {
      signal.removeEventListener("abort", cancel);
    }
    const first = rows[0];
    return first === undefined ? null : columnBytes(first[0]);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.sql.close({ timeout: 5 });
  }
}
