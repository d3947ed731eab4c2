// The flags that name credential files (--etcd-*, --nats-*): their loaders report the option at
// fault by its own name; the user typed a flag.
import { UsageError } from "../errors.ts";
import { CredentialError } from "../security/secret-files.ts";

/** Runs `load`; a CredentialError becomes a UsageError naming the flag that `flagOf` maps its field to. */
export function withFlagNames<Field extends string, T>(flagOf: Record<Field, string>, load: () => T): T {
  try {
    return load();
  } catch (error) {
    if (error instanceof CredentialError)
      throw new UsageError(`${flagOf[error.field as Field]}: ${error.message}`);
    throw error;
  }
}
