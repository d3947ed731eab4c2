// A grpc-js client of gravity.v1.Cache with promises and typed messages. A failed call rejects with
// grpc-js's ServiceError: `code` is the gRPC status (status.ts lists what the server answers).
import {
  type CallOptions,
  type ChannelCredentials,
  type ChannelOptions,
  type Client,
  credentials,
  Metadata,
  makeGenericClientConstructor,
  type ServiceError,
} from "@grpc/grpc-js";
import { CacheService } from "./services.ts";

/** A key as bytes, or a string sent as UTF-8. */
export type KeyText = string | Uint8Array;

/** Get's answer: found false on a miss (value empty). */
export interface GetResponse {
  found: boolean;
  value: Uint8Array;
}

const utf8 = new TextEncoder();

function keyBytes(key: KeyText): Uint8Array {
  return typeof key === "string" ? utf8.encode(key) : key;
}

function plain({ found, value }: GetResponse): GetResponse {
  return { found, value };
}

/** The generic grpc-js client class of gravity.v1.Cache (methods get, set, delete, getMulti, touch, stats). */
export const CacheClientConstructor = makeGenericClientConstructor(CacheService, "Cache");

type Callback<Res> = (error: ServiceError | null, response?: Res) => void;
type Method = (
  request: unknown,
  metadata: Metadata,
  options: CallOptions,
  callback: Callback<unknown>,
) => void;

export interface GrpcCacheClientOptions {
  /** grpc-js channel options, e.g. { "grpc.max_receive_message_length": n }. */
  channel?: ChannelOptions;
  /** TLS (credentials.createSsl(ca, key, cert)); default plaintext. */
  credentials?: ChannelCredentials;
  /** Metadata sent with every call, e.g. `authorization: Bearer <token>` (made per call). */
  metadata?: () => Metadata;
  /** Each call's deadline from when it is made (default: none). */
  deadlineMs?: number;
}

/** One HTTP/2 connection to a gravity gRPC server (a leaf or a router) at "host:port". */
export class GrpcCacheClient {
  readonly client: Client;
  private readonly deadlineMs: number | undefined;
  private readonly metadata: (() => Metadata) | undefined;

  constructor(address: string, options: GrpcCacheClientOptions = {}) {
    this.client = new CacheClientConstructor(
      address,
      options.credentials ?? credentials.createInsecure(),
      options.channel,
    );
    this.deadlineMs = options.deadlineMs;
    this.metadata = options.metadata;
  }

  private call<Res>(name: keyof typeof CacheService, request: unknown): Promise<Res> {
    const method = (this.client as unknown as Record<string, Method>)[name] as Method;
    const options: CallOptions =
      this.deadlineMs === undefined ? {} : { deadline: Date.now() + this.deadlineMs };
    return new Promise<Res>((resolve, reject) => {
      method.call(this.client, request, this.metadata?.() ?? new Metadata(), options, (error, response) => {
        if (error !== null) reject(error);
        else resolve(response as Res);
      });
    });
  }

  /** `found` false on a miss. */
  async get(group: string, key: KeyText): Promise<GetResponse> {
    return plain(await this.call<GetResponse>("get", { group, key: keyBytes(key) }));
  }

  /** `ttlSeconds` is memcached's exptime (0: never expires). */
  async set(group: string, key: KeyText, value: Uint8Array, ttlSeconds = 0): Promise<void> {
    await this.call("set", { group, key: keyBytes(key), value, ttlSeconds });
  }

  /** False if there was no item. */
  async delete(group: string, key: KeyText): Promise<boolean> {
    return (await this.call<{ deleted: boolean }>("delete", { group, key: keyBytes(key) })).deleted;
  }

  /** One response per key, in the order of `keys`. */
  async getMulti(group: string, keys: readonly KeyText[]): Promise<GetResponse[]> {
    const request = { group, keys: keys.map(keyBytes) };
    return (await this.call<{ items: GetResponse[] }>("getMulti", request)).items.map(plain);
  }

  /** False if there was no item. */
  async touch(group: string, key: KeyText, ttlSeconds: number): Promise<boolean> {
    return (await this.call<{ touched: boolean }>("touch", { group, key: keyBytes(key), ttlSeconds }))
      .touched;
  }

  /** The server's counters, or with a group that group's call counters. */
  async stats(group = ""): Promise<Map<string, string>> {
    return new Map(
      Object.entries((await this.call<{ stats: Record<string, string> }>("stats", { group })).stats),
    );
  }

  close(): void {
    this.client.close();
  }
}
