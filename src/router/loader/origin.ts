// Where a loader route fetches a value the cache missed: an HTTP endpoint or a SQL query. An origin
// answers one key at a time; the loader route (handles/loader.ts) bounds each load with a timeout,
// shares it between concurrent misses (singleflight.ts) and stores what it returns.
import { GravityError } from "../../errors.ts";

/** A source of values for cache misses (a read-through loader's origin). */
export interface Origin {
  /** What error messages call this origin: a URL or a database without credentials. */
  readonly name: string;
  /**
   * What the origin holds for `key` (the item's key bytes), or null when it holds nothing (not
   * found, cached as a negative entry). Rejects with OriginError on an origin failure; stops and
   * rejects with `signal.reason` once `signal` aborts.
   */
  load(key: Uint8Array, signal: AbortSignal): Promise<Uint8Array | null>;
  /** Releases connections and handles; loads after close reject. */
  close(): Promise<void>;
}

/**
 * An origin failed to answer: an HTTP status other than 200/404, a SQL error, a timeout, a refused
 * connection. `origin` names it without credentials; the message is what a client reads after
 * SERVER_ERROR. `status` is the HTTP status when there was one.
 */
export class OriginError extends GravityError {
  readonly origin: string;
  readonly status: number | undefined;

  constructor(origin: string, reason: string, options?: { cause?: unknown; status?: number }) {
    super("EORIGIN", `origin ${origin}: ${reason}`, options);
    this.name = "OriginError";
    this.origin = origin;
    this.status = options?.status;
  }
}

/** Throws `signal.reason` (an Error) or an OriginError saying the load was aborted. */
export function throwIfAborted(signal: AbortSignal, origin: string): void {
  if (!signal.aborted) return;
  throw abortReason(signal, origin);
}

/** Why `signal` aborted, as an Error: its reason, or an OriginError saying the load was aborted. */
export function abortReason(signal: AbortSignal, origin: string): Error {
  return signal.reason instanceof Error ? signal.reason : new OriginError(origin, "load aborted");
}

/**
 * `origin.load(key)` bounded by `timeoutMs`: past it the load's signal aborts with
 * OriginError("timed out after N ms") and that error rejects the result even if the origin
 * ignores its signal (bun:sqlite runs synchronously, so it cannot be interrupted at all).
 */
export function loadWithTimeout(
  origin: Origin,
  key: Uint8Array,
  timeoutMs: number,
): Promise<Uint8Array | null> {
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new OriginError(origin.name, `timed out after ${timeoutMs} ms`);
      controller.abort(error);
      reject(error);
    }, timeoutMs);
  });
  let load: Promise<Uint8Array | null>;
  try {
    load = origin.load(key, controller.signal);
  } catch (error) {
    load = Promise.reject(error);
  }
  return Promise.race([load, expired])
    .catch((error: unknown) => {
      if (error instanceof OriginError) throw error;
      throw new OriginError(origin.name, reasonOf(error), { cause: error });
    })
    .finally(() => clearTimeout(timer));
}

/** The text of a thrown value, on one line (it ends up in a SERVER_ERROR line). */
export function reasonOf(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.replace(/\s+/g, " ").trim();
}

const utf8Strict = new TextDecoder("utf-8", { fatal: true });

/** `key` as UTF-8 text (what SQL parameters and URL templates take); OriginError if it is not UTF-8. */
export function keyText(key: Uint8Array, origin: string): string {
  try {
    return utf8Strict.decode(key);
  } catch (error) {
    throw new OriginError(origin, "key is not valid UTF-8", { cause: error });
  }
}

const utf8 = new TextEncoder();

/**
 * A SQL column value as the bytes to cache: text as UTF-8, blobs as they are, numbers and booleans
 * as their decimal text, dates as ISO 8601, JSON values as JSON; null and undefined are not found.
 */
export function columnBytes(value: unknown): Uint8Array | null {
  if (value === null || value === undefined) return null;
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (typeof value === "string") return utf8.encode(value);
  if (typeof value === "number" || typeof value === "bigint" || typeof value === "boolean")
    return utf8.encode(String(value));
  if (value instanceof Date) return utf8.encode(value.toISOString());
  return utf8.encode(JSON.stringify(value));
}
