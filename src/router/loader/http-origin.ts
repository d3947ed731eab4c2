// An HTTP origin: GET a URL built from a template with the key in place of `{key}`.
//
//   200 -> the body is the value      404 -> not found (a negative entry)
//   anything else, a refused connection, a body over the limit -> OriginError (nothing cached)
import { abortReason, type Origin, OriginError, reasonOf } from "./origin.ts";

export interface HttpOriginOptions {
  /** The URL with `{key}` where the key goes, e.g. `http://origin/items/{key}`; at least one `{key}`. */
  urlTemplate: string;
  /** Headers sent with every request (e.g. authorization). */
  headers?: Record<string, string>;
  /** The largest body taken as a value (default 1 MiB, the leaf's default item limit). */
  maxValueBytes?: number;
}

const DEFAULT_MAX_VALUE_BYTES = 1024 * 1024;
const HEX = "0123456789ABCDEF";

/**
 * `key` percent-encoded byte by byte (RFC 3986): unreserved bytes stay, every other byte, `/`
 * included, becomes %XX. A key is one path segment or query value, whatever bytes it holds.
 */
export function percentEncode(key: Uint8Array): string {
  let out = "";
  for (const byte of key) {
    const unreserved =
      (byte >= 0x30 && byte <= 0x39) || // 0-9
      (byte >= 0x41 && byte <= 0x5a) || // A-Z
      (byte >= 0x61 && byte <= 0x7a) || // a-z
      byte === 0x2d || // -
      byte === 0x2e || // .
      byte === 0x5f || // _
      byte === 0x7e; // ~
    out += unreserved ? String.fromCharCode(byte) : `%${HEX[byte >> 4]}${HEX[byte & 15]}`;
  }
  return out;
}

/** Loads values with GET requests (Bun's fetch, which pools keep-alive connections per host). */
export class HttpOrigin implements Origin {
  readonly name: string;
  private readonly parts: readonly string[]; // the template split at each {key}
  private readonly headers: Record<string, string>;
  private readonly maxValueBytes: number;
  private closed = false;

  constructor(options: HttpOriginOptions) {
    this.parts = options.urlTemplate.split("{key}");
    if (this.parts.length < 2) throw new RangeError(`URL template ${options.urlTemplate} has no {key}`);
    const protocol = new URL(this.parts.join("x")).protocol;
    if (protocol !== "http:" && protocol !== "https:")
      throw new RangeError(`URL template ${options.urlTemplate} is not http: or https:`);
    this.name = options.urlTemplate.replace(/\/\/[^/@]*@/, "//");
    this.headers = options.headers ?? {};
    this.maxValueBytes = options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
  }

  /** The URL for `key`. */
  url(key: Uint8Array): string {
    return this.parts.join(percentEncode(key));
  }

  async load(key: Uint8Array, signal: AbortSignal): Promise<Uint8Array | null> {
    if (this.closed) throw new OriginError(this.name, "origin is closed");
    let response: Response;
    try {
      response = await fetch(this.url(key), { headers: this.headers, signal, redirect: "follow" });
    } catch (error) {
      if (signal.aborted) throw abortReason(signal, this.name);
      throw new OriginError(this.name, `request failed: ${reasonOf(error)}`, { cause: error });
    }
    if (response.status === 404) {
      await response.body?.cancel();
      return null;
    }
    if (response.status !== 200) {
      await response.body?.cancel();
      throw new OriginError(this.name, `HTTP ${response.status}`, { status: response.status });
    }
    try {
      return await this.readBody(response);
    } catch (error) {
      if (signal.aborted) throw abortReason(signal, this.name);
      throw error instanceof OriginError
        ? error
        : new OriginError(this.name, `reading the body failed: ${reasonOf(error)}`, { cause: error });
    }
  }

  // The body, refused as soon as it passes maxValueBytes (a declared length is checked first).
  private async readBody(response: Response): Promise<Uint8Array> {
    const limit = this.maxValueBytes;
    const tooLarge = (bytes: number | string) =>
      new OriginError(this.name, `value is ${bytes} bytes; the limit is ${limit}`);
    const declared = Number(response.headers.get("content-length") ?? Number.NaN);
    if (declared > limit) {
      await response.body?.cancel();
      throw tooLarge(declared);
    }
    const body = response.body;
    if (body === null) return new Uint8Array(0);
    const reader = body.getReader();
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > limit) {
        await reader.cancel();
        throw tooLarge(`more than ${limit}`);
      }
      chunks.push(value);
    }
    if (chunks.length === 1) return chunks[0] as Uint8Array;
    const out = new Uint8Array(total);
    let at = 0;
    for (const chunk of chunks) {
      out.set(chunk, at);
      at += chunk.length;
    }
    return out;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
