// Which error messages are TLS refusals (isTlsRefusal), and the listener's TLS flags naming
// themselves when a file is bad.
import { expect, test } from "bun:test";
import { UsageError } from "../errors.ts";
import { isTlsRefusal, loadTls } from "./tls.ts";

test("certificate errors and TLS alerts are refusals", () => {
  for (const message of [
    "error:10000410:SSL routines:OPENSSL_internal:SSLV3_ALERT_HANDSHAKE_FAILURE",
    "error:1000045c:SSL routines:OPENSSL_internal:TLSV1_ALERT_CERTIFICATE_REQUIRED",
    "unable to verify the first certificate",
    "self-signed certificate in certificate chain",
    "Hostname/IP does not match certificate's altnames: IP: 127.0.0.2 is not in the cert's list: 127.0.0.1",
  ])
    expect({ message, refusal: isTlsRefusal(message) }).toEqual({ message, refusal: true });
});

test("resets, closes and timeouts are not", () => {
  for (const message of [
    "read ECONNRESET",
    "socket hang up",
    "Client network socket disconnected before secure TLS connection was established",
    "connect ECONNREFUSED 127.0.0.1:4222",
    "closed by the server",
    "TIMEOUT",
  ])
    expect({ message, refusal: isTlsRefusal(message) }).toEqual({ message, refusal: false });
});

test("loadTls names the flag of a file it cannot read", () => {
  expect(() => loadTls({ cert: "/nonexistent/cert.pem", key: "/nonexistent/key.pem", ca: "" })).toThrow(
    new UsageError('--tls-cert: cannot read "/nonexistent/cert.pem" (ENOENT)'),
  );
});
