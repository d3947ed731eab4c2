// A SQLite origin (bun:sqlite, the embedded default): one parameterised query, the key bound to its
// one parameter (`?`, `?1`, `$key`, `:key` or `@key`) as UTF-8 text. The first column of the first
// row is the value; no row, or a NULL there, is not found.
//
// bun:sqlite runs a query synchronously on the router's thread: keep the query an indexed lookup.
// The database opens read-only on the first load, and again on a later load if opening failed.
import { Database, type Statement } from "bun:sqlite";
import { columnBytes, keyText, type Origin, OriginError, reasonOf, throwIfAborted } from "./origin.ts";

export interface SqliteOriginOptions {
  /** The database file (opened read-only; it must exist). */
  path: string;
  /** A query with exactly one parameter, e.g. `SELECT value FROM items WHERE key = ?`. */
  query: string;
}

export class SqliteOrigin implements Origin {
  readonly name: string;
  private database: Database | undefined;
  private statement: Statement | undefined;
  private closed = false;

  constructor(private readonly options: SqliteOriginOptions) {
    this.name = `sqlite:${options.path}`;
  }

  async load(key: Uint8Array, signal: AbortSignal): Promise<Uint8Array | null> {
    throwIfAborted(signal, this.name);
    if (this.closed) throw new OriginError(this.name, "origin is closed");
    const text = keyText(key, this.name);
    const statement = this.prepared();
    let rows: unknown[][];
    try {
      rows = statement.values(text) as unknown[][];
    } catch (error) {
      throw new OriginError(this.name, reasonOf(error), { cause: error });
    }
    const first = rows[0];
    return first === undefined ? null : columnBytes(first[0]);
  }

  // The statement, opening the database and preparing the query on first use.
  private prepared(): Statement {
    if (this.statement !== undefined) return this.statement;
    try {
      this.database ??= new Database(this.options.path, { readonly: true });
      const statement = this.database.query(this.options.query);
      if (statement.paramsCount !== 1) {
        throw new Error(`the query has ${statement.paramsCount} parameters; a loader query takes exactly 1`);
      }
      this.statement = statement;
      return statement;
    } catch (error) {
      throw new OriginError(this.name, reasonOf(error), { cause: error });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.statement?.finalize();
    this.statement = undefined;
    this.database?.close();
    this.database = undefined;
  }
}
