import { expect, test } from "bun:test";
import { exposureWarning, isLoopback } from "./exposure.ts";

test("loopback addresses are 127.0.0.0/8, ::1 and localhost", () => {
  for (const host of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"])
    expect(isLoopback(host)).toBe(true);
  for (const host of ["0.0.0.0", "10.0.0.5", "::", "128.0.0.1", "example.com"])
    expect(isLoopback(host)).toBe(false);
});

test("a warning only for a reachable address with nothing protecting it", () => {
  expect(exposureWarning("leaf", "HTTP", "127.0.0.1", false)).toBeNull();
  expect(exposureWarning("leaf", "HTTP", "0.0.0.0", true)).toBeNull();
  expect(exposureWarning("router", "gRPC", "0.0.0.0", false)).toBe(
    "gravity router: warning: gRPC on 0.0.0.0 is reachable from other machines with neither TLS nor authentication (see --tls-cert, --auth-token-file)",
  );
});
