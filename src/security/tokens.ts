// Bearer tokens for the HTTP and gRPC front doors (`Authorization: Bearer <token>`). The file holds
// one token per line (blank lines and lines starting with # are skipped). Tokens are kept as
// SHA-256 digests and compared in constant time; no token is ever logged or exported.
import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { UsageError } from "../errors.ts";

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

function digest(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}

/** The accepted tokens. */
export class BearerTokens {
  private readonly digests: Buffer[];

  constructor(tokens: readonly string[]) {
    this.digests = tokens.map(digest);
  }

  /** Reads --auth-token-file; an unreadable or empty file is a UsageError naming the flag. */
  static fromFile(path: string, flag = "--auth-token-file"): BearerTokens {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (error) {
      throw new UsageError(`${flag}: cannot read ${JSON.stringify(path)}: ${(error as Error).message}`);
    }
    const tokens = text
      .split("\n")
      .map((line) => line.trim())
      .filter((line) => line !== "" && !line.startsWith("#"));
    if (tokens.length === 0) throw new UsageError(`${flag}: ${JSON.stringify(path)} holds no token`);
    if (tokens.some((token) => /\s/.test(token))) {
      throw new UsageError(`${flag}: a token in ${JSON.stringify(path)} contains whitespace`);
    }
    return new BearerTokens(tokens);
  }

  /** True when `authorization` (an Authorization header or gRPC metadata value) carries a known token. */
  accepts(authorization: string | null | undefined): boolean {
    const token = authorization == null ? undefined : BEARER.exec(authorization)?.[1];
    if (token === undefined) return false;
    const presented = digest(token);
    let ok = false;
    for (const known of this.digests) ok = timingSafeEqual(presented, known) || ok;
    return ok;
  }
}
