// The version of this build, reported by `gravity --version` and the memcached `version` command.
import pkg from "../package.json" with { type: "json" };

export const VERSION: string = pkg.version;
