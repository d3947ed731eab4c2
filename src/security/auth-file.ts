// memcached's `-Y` authentication file: one `user:password` per line (memcached authfile.c). Blank
// lines are skipped; a line without a colon is an error naming the file and line, so a typo does
// not silently lock everyone out.
import { readFileSync } from "node:fs";
import { UsageError } from "../errors.ts";

/** user -> password from the file at `path`; a bad file is a UsageError naming `flag`. */
export function readAuthFile(path: string, flag: string): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new UsageError(`${flag}: cannot read ${JSON.stringify(path)}: ${(error as Error).message}`);
  }
  const passwords: Record<string, string> = {};
  text.split("\n").forEach((raw, index) => {
    const line = raw.replace(/\r$/, "");
    if (line.trim() === "") return;
    const colon = line.indexOf(":");
    if (colon <= 0) throw new UsageError(`${flag}: ${path}:${index + 1}: expected user:password`);
    passwords[line.slice(0, colon)] = line.slice(colon + 1);
  });
  if (Object.keys(passwords).length === 0)
    throw new UsageError(`${flag}: ${JSON.stringify(path)} holds no user`);
  return passwords;
}
