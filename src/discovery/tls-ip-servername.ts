// gRPC over TLS to an etcd addressed by IP, on Bun. grpc-js passes the target's host as the TLS
// `servername` whatever it is; Node warns that an IP there breaks RFC 6066 section 3 (DEP0123)
// and goes on, Bun's node:tls throws ERR_INVALID_ARG_VALUE ("Setting the TLS ServerName to an IP
// address is not permitted"), so `https://127.0.0.1:2379` could never connect. Installed once,
// this wrapper of tls.connect leaves out a servername that is an IP literal (no SNI, as the RFC
// asks); the certificate is still checked against the address, which grpc-js also passes as
// `host` (traced: a socket to 127.0.0.1 checked against "localhost" fails on the altnames).
import { isIP } from "node:net";
import tls from "node:tls";

let installed = false;

/** Makes tls.connect accept an IP `servername` by omitting it; idempotent. */
export function omitIpServername(): void {
  if (installed) return;
  installed = true;
  const connect = tls.connect as (...args: unknown[]) => tls.TLSSocket;
  (tls as { connect: unknown }).connect = (...args: unknown[]): tls.TLSSocket => {
    const options = args[0];
    if (options !== null && typeof options === "object") {
      const { servername, ...rest } = options as tls.ConnectionOptions;
      if (typeof servername === "string" && isIP(servername) !== 0) args[0] = rest;
    }
    return connect.apply(tls, args);
  };
}
