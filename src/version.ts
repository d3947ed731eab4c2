// The version of this build, reported by `gravity --version` and the memcached `version` command.
import pkg from "../package.json" with { type: "json" };

export const VERSION: string = pkg.version;

/**
 * What the memcached `version` command reports. Clients such as libmemcached choose protocol
 * behaviours from the memcached version they parse, and the leaf speaks memcached 1.6's protocol.
 */
export const MEMCACHED_VERSION = `1.6.0-gravity-${VERSION}`;
