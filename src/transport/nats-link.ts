// One process's connection to NATS, kept alive in the background, with fail-fast for callers.
//
//   open() ──> connecting ──connect() ok──> connected <──"reconnect"── reconnecting
//                 ^   └─refused: retry after reconnectWaitMs     └─"disconnect"─┘
//                 └──── the connection closed by itself (not by close()) ───────────┘
//
// nats.js reconnects by itself (maxReconnectAttempts: -1) and resubscribes, but while it is
// reconnecting it buffers what is published and a request waits for its full timeout. Gravity's
// rule is that NATS paths fail fast while NATS is unreachable, so the link tracks the status
// events and require() throws ConnectionError("NATS unreachable: ...") at once while not
// connected. Requests already in flight when the connection drops are failed at once (onDisconnect).
//
// The first connect is our own loop (connect() with waitOnFirstConnect would keep retrying inside
// nats.js with nothing we could close), so a router or leaf starts without NATS and picks it up
// when it appears, and close() stops everything.
//
// A server that refuses us (a wrong password or token, a certificate it or we reject) is told apart
// from one that cannot be reached: openAccepted() lets a starting process end with the reason, and
// later the "refused" status is reported once per change of reason, not once per retry.
import { connect, ErrorCode, Events, type NatsConnection } from "nats";
import { ConnectionError } from "../errors.ts";
import { isTlsRefusal } from "../security/tls.ts";
import { type NatsCredentials, natsConnectionOptions } from "./nats-credentials.ts";
import { probeNatsTls } from "./nats-tls-probe.ts";

export interface NatsLinkOptions {
  /** NATS servers: "host:port" or "nats://host:port", one or several. */
  servers: string | readonly string[];
  /** Shown in the NATS server's connection list (default "gravity"). */
  name?: string;
  /** Delay between connection attempts, first connect and reconnects (default 250 ms). */
  reconnectWaitMs?: number;
  /** How long one connection attempt may take (default 2000 ms). */
  connectTimeoutMs?: number;
  /** Client pings; a server that misses two is considered gone (default 10 s). */
  pingIntervalMs?: number;
  /** TLS and authentication (nats-credentials.ts); default none. */
  credentials?: NatsCredentials;
  /**
   * Status changes, for logs and metrics: "connected", "disconnected", "closed", and "refused"
   * with the server's reason (see describeNatsStatus).
   */
  onStatus?: (status: NatsLinkStatus, server: string, reason?: string) => void;
}

export const NatsLinkStatus = {
  Connected: "connected",
  Disconnected: "disconnected",
  Closed: "closed",
  /** The server refused our credentials or a TLS handshake failed on a certificate. */
  Refused: "refused",
} as const;
export type NatsLinkStatus = (typeof NatsLinkStatus)[keyof typeof NatsLinkStatus];

/** A NATS connection that reconnects by itself; see the diagram above. */
export class NatsLink {
  /** "nats host:port[,host:port]": what errors name as the destination. */
  readonly name: string;
  private nc: NatsConnection | null = null;
  private isConnected = false;
  private closing = false;
  private lastError = "not connected yet";
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  // Called at each disconnect: senders fail their in-flight requests now, not at their timeout.
  private readonly disconnectListeners = new Set<(error: ConnectionError) => void>();
  // Callbacks run with each new NatsConnection object (the first, and any after a closed one).
  private readonly connectionListeners = new Set<(nc: NatsConnection) => void>();
  private readonly statusWatchers = new Set<() => void>(); // ready() calls waiting for a change
  private readonly servers: string[];
  private refusedReason: string | undefined; // the last refusal reported, until a connect succeeds
  private resolveFirstAttempt: (refusal: ConnectionError | undefined) => void = () => {};
  private readonly firstAttempt = new Promise<ConnectionError | undefined>((resolve) => {
    this.resolveFirstAttempt = resolve;
  });

  private constructor(private readonly options: NatsLinkOptions) {
    this.servers = typeof options.servers === "string" ? [options.servers] : [...options.servers];
    if (this.servers.length === 0) throw new RangeError("NATS needs at least one server");
    this.name = `nats ${this.servers.join(",")}`;
  }

  /** Starts connecting in the background and returns at once; see connected / ready(). */
  static open(options: NatsLinkOptions): NatsLink {
    const link = new NatsLink(options);
    void link.attempt();
    return link;
  }

  /**
   * Opens as open() does and waits for the first connection attempt: rejects with the server's
   * reason (ConnectionError "refused the connection: ...", the link closed) if the server refused
   * us (credentials or certificates, which retrying will not fix); resolves once it connected or
   * turned out unreachable (the link then keeps trying in the background).
   */
  static async openAccepted(options: NatsLinkOptions): Promise<NatsLink> {
    const link = NatsLink.open(options);
    const refusal = await link.firstAttempt;
    if (refusal === undefined) return link;
    await link.close();
    throw refusal;
  }

  /** Connected now: NATS paths can be used. */
  get connected(): boolean {
    return this.isConnected;
  }

  /** The connection, or ConnectionError("NATS unreachable: ...") at once if not connected now. */
  require(): NatsConnection {
    if (this.isConnected && this.nc !== null) return this.nc;
    throw this.unreachable();
  }

  /**
   * Calls `listener` each time the connection drops, with the error for requests then in flight
   * (nats.js would let them wait for their timeout). Returns a function that stops the calls.
   */
  onDisconnect(listener: (error: ConnectionError) => void): () => void {
    this.disconnectListeners.add(listener);
    return () => this.disconnectListeners.delete(listener);
  }

  /**
   * Calls `listener` with the connection now (if there is one) and with every new connection
   * object later; subscriptions made on it survive reconnects (nats.js resubscribes). Returns a
   * function that stops the calls.
   */
  onConnection(listener: (nc: NatsConnection) => void): () => void {
    this.connectionListeners.add(listener);
    if (this.nc !== null && !this.nc.isClosed()) listener(this.nc);
    return () => this.connectionListeners.delete(listener);
  }

  /** Resolves once connected (at once if connected); rejects past `deadlineMs` with ConnectionError. */
  ready(deadlineMs = 10_000): Promise<NatsConnection> {
    if (this.isConnected && this.nc !== null) return Promise.resolve(this.nc);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        stop();
        reject(this.unreachable(`not connected within ${deadlineMs} ms`));
      }, deadlineMs);
      const check = () => {
        if (this.isConnected && this.nc !== null) {
          clearTimeout(timer);
          stop();
          resolve(this.nc);
        }
      };
      const stop = this.watchStatus(check);
    });
  }

  /** Stops reconnecting and closes the connection (pending requests fail). */
  async close(): Promise<void> {
    this.closing = true;
    this.resolveFirstAttempt(undefined);
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.setDisconnected("closed");
    const nc = this.nc;
    this.nc = null;
    if (nc !== null && !nc.isClosed()) await nc.close();
    this.options.onStatus?.(NatsLinkStatus.Closed, this.servers.join(","));
  }

  private watchStatus(callback: () => void): () => void {
    this.statusWatchers.add(callback);
    return () => this.statusWatchers.delete(callback);
  }

  private notify(status: NatsLinkStatus, server: string, reason?: string): void {
    this.options.onStatus?.(status, server, reason);
    for (const watcher of [...this.statusWatchers]) watcher();
  }

  private unreachable(detail?: string): ConnectionError {
    return new ConnectionError(
      this.name,
      `NATS unreachable: ${detail ?? this.lastError}${this.closing ? "" : "; reconnecting in the background"}`,
    );
  }

  // Returns whether the link was connected until now (a change of state, worth a log line).
  private setDisconnected(reason: string): boolean {
    this.lastError = reason;
    if (!this.isConnected) return false;
    this.isConnected = false;
    const error = this.unreachable(`connection lost (${reason}) with the request in flight`);
    for (const listener of [...this.disconnectListeners]) listener(error);
    return true;
  }

  private setConnected(server: string): void {
    this.isConnected = true;
    this.lastError = "";
    this.refusedReason = undefined;
    this.notify(NatsLinkStatus.Connected, server);
  }

  // One connection attempt; on failure another after reconnectWaitMs, until close().
  private async attempt(): Promise<void> {
    this.retryTimer = undefined;
    if (this.closing) return;
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers: this.servers,
        name: this.options.name ?? "gravity",
        reconnect: true,
        maxReconnectAttempts: -1,
        reconnectTimeWait: this.options.reconnectWaitMs ?? 250,
        timeout: this.options.connectTimeoutMs ?? 2000,
        pingInterval: this.options.pingIntervalMs ?? 10_000,
        waitOnFirstConnect: false,
        ...natsConnectionOptions(this.options.credentials ?? {}),
      });
    } catch (error) {
      const servers = this.servers.join(",");
      let reason = describe(error);
      let refused = isRefusal(error);
      const tls = this.options.credentials?.tls;
      if (!refused && tls !== undefined && (error as { code?: unknown }).code === ErrorCode.Timeout) {
        // The timeout may hide a rejected client certificate (nats-tls-probe.ts).
        // It costs a black-holed or silent server at most PROBE_INFO_TIMEOUT_MS more.
        const rejected = await probeNatsTls(this.servers[0] as string, tls, {
          timeoutMs: this.options.connectTimeoutMs ?? 2000,
        });
        if (rejected !== undefined) {
          refused = true;
          reason = `TLS handshake rejected: ${rejected}`;
        }
      }
      this.lastError = `${refused ? "refused by" : "cannot connect to"} ${servers} (${reason})`;
      if (refused && this.refusedReason !== this.lastError) {
        this.refusedReason = this.lastError;
        this.notify(NatsLinkStatus.Refused, servers, reason);
      }
      this.resolveFirstAttempt(
        refused ? new ConnectionError(this.name, `refused the connection: ${reason}`) : undefined,
      );
      if (!this.closing)
        this.retryTimer = setTimeout(() => void this.attempt(), this.options.reconnectWaitMs ?? 250);
      return;
    }
    this.resolveFirstAttempt(undefined);
    if (this.closing) {
      await nc.close();
      return;
    }
    this.nc = nc;
    void this.follow(nc);
    this.setConnected(nc.getServer());
    for (const listener of [...this.connectionListeners]) listener(nc);
  }

  // Follows one connection's status events until it closes.
  private async follow(nc: NatsConnection): Promise<void> {
    void nc.closed().then((error) => {
      if (this.nc !== nc) return;
      if (this.setDisconnected(error instanceof Error ? `closed: ${error.message}` : "closed"))
        this.notify(NatsLinkStatus.Disconnected, nc.getServer());
      this.nc = null;
      if (!this.closing)
        this.retryTimer = setTimeout(() => void this.attempt(), this.options.reconnectWaitMs ?? 250);
    });
    for await (const status of nc.status()) {
      if (this.nc !== nc) return;
      if (status.type === Events.Disconnect) {
        // nats.js reports each failed reconnection attempt; only the first is a change.
        if (this.setDisconnected(`disconnected from ${String(status.data)}`))
          this.notify(NatsLinkStatus.Disconnected, String(status.data));
      } else if (status.type === Events.Reconnect) {
        this.setConnected(String(status.data));
      }
    }
  }
}

/** The largest message the server takes, headers included (its max_payload; NATS's default until it says). */
export function maxPayloadBytes(nc: NatsConnection): number {
  return nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD_BYTES;
}

const DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024;

/** One log line for a status change from NatsLinkOptions.onStatus. */
export function describeNatsStatus(status: NatsLinkStatus, server: string, reason?: string): string {
  return `nats ${status} (${server})${reason === undefined ? "" : `: ${reason}`}`;
}

// Errors that retrying with the same settings cannot fix: the server said no to who we are, or a
// TLS handshake failed on a certificate (ours or the server's), or TLS is wanted and not offered.
const REFUSAL_CODES = new Set<string>([
  ErrorCode.AuthorizationViolation,
  ErrorCode.AuthenticationExpired,
  ErrorCode.AuthenticationTimeout,
  ErrorCode.Tls,
  ErrorCode.ServerOptionNotAvailable,
]);

function isRefusal(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && REFUSAL_CODES.has(code)) return true;
  return isTlsRefusal(describe(error));
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === "string" && code !== error.message ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}
