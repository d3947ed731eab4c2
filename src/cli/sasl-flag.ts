// --sasl-file, shared by `gravity leaf` and `gravity router`: memcached's SASL password file
// (memcached -S with MEMCACHED_SASL_PWDB), read once at start.

import { readFileSync } from "node:fs";
import { UsageError } from "../errors.ts";
import { parseSaslPasswords, type SaslPasswords } from "../protocol/sasl-plain.ts";
import { FlagKind, type FlagSpec } from "./args.ts";

export const SASL_FLAG: FlagSpec = {
  name: "sasl-file",
  kind: FlagKind.String,
  default: "",
  help: "memcached's SASL password file (user:password lines): binary protocol only, SASL PLAIN required",
};

/**
 * The users of the --sasl-file at `path` ("" is off: undefined). An unreadable file or one that
 * names no user is a usage error naming the flag and the file, never its contents.
 */
export function readSaslFile(path: string, flag = "--sasl-file"): SaslPasswords | undefined {
  if (path === "") return undefined;
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new UsageError(`${flag}: cannot read ${JSON.stringify(path)}: ${(error as Error).message}`);
  }
  const passwords = parseSaslPasswords(text);
  if (passwords.size === 0)
    throw new UsageError(`${flag}: ${JSON.stringify(path)} has no user:password line`);
  return passwords;
}
