// The flags that name credential files (--etcd-*, --nats-*), read through the map from a loader's
// option names to its flags (etcd-flags.ts, nats-flags.ts): their values become the loader's
// options, and given without the connection they are for they are refused, as --pool without
// --etcd is, not ignored.
import { UsageError } from "../errors.ts";
import type { FlagValues } from "./args.ts";

/**
 * The values of the flags in `flagOf` (the loader's options -> "--flag") other than the
 * `connection` option's, by option name ("" where not given).
 */
export function credentialFlagValues<Field extends string, Connection extends Field>(
  flags: FlagValues,
  flagOf: Record<Field, string>,
  connection: Connection,
): Record<Exclude<Field, Connection>, string> {
  const values = {} as Record<Exclude<Field, Connection>, string>;
  for (const field of Object.keys(flagOf) as Field[]) {
    if (field !== connection)
      values[field as Exclude<Field, Connection>] = flags[flagOf[field].slice(2)] as string;
  }
  return values;
}

/**
 * Throws UsageError("<flag>: only with <connection's flag>") for the first of those flags that
 * was given a value.
 */
export function refuseWithout<Field extends string>(
  flags: FlagValues,
  flagOf: Record<Field, string>,
  connection: Field,
): void {
  const values: Record<string, string> = credentialFlagValues(flags, flagOf, connection);
  for (const field of Object.keys(values)) {
    if (values[field] !== "")
      throw new UsageError(`${flagOf[field as Field]}: only with ${flagOf[connection]}`);
  }
}
