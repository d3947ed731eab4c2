// The flags that name credential files (--etcd-*, --nats-*) mean nothing without the connection
// they are for: given alone they are refused, as --pool without --etcd is, not ignored.
import { UsageError } from "../errors.ts";
import type { FlagValues } from "./args.ts";

/**
 * Throws UsageError("<flag>: only with <connectionFlag>") for the first flag of `flagOf` (the
 * loader's fields -> "--flag") other than `connectionFlag` that was given a value.
 */
export function refuseWithout(
  flags: FlagValues,
  flagOf: Record<string, string>,
  connectionFlag: string,
): void {
  for (const flag of Object.values(flagOf)) {
    if (flag !== connectionFlag && flags[flag.slice(2)] !== "")
      throw new UsageError(`${flag}: only with ${connectionFlag}`);
  }
}
