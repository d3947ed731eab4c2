// Loopback-only binding is the default; binding an address others can reach without TLS or
// authentication is allowed, but said out loud.

/** True for an address only this machine reaches (127.0.0.0/8, ::1, localhost). */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * The warning for a listener on `host` that others can reach, with neither TLS nor authentication
 * protecting it, or null when there is nothing to warn about.
 */
export function exposureWarning(
  role: string,
  what: string,
  host: string,
  protectedBy: boolean,
): string | null {
  if (isLoopback(host) || protectedBy) return null;
  return `gravity ${role}: warning: ${what} on ${host} is reachable from other machines with neither TLS nor authentication (see --tls-cert, --auth-token-file)`;
}
