// A grpc-js client of gravity.v1.Cache with promises and typed messages. A failed call rejects with
// grpc-js's ServiceError: `code` is the gRPC status (status.ts lists what the server answers).
import {
  type CallOptions,
  type ChannelOptions,
  type Client,
  credentials,
  makeGenericClientConstructor,
  type ServiceError,
} from "@grpc/grpc-js";
import type { GetResponse, KeyText } from "./cache-messages.ts";
import { CacheService } from "./services.ts";

/** The generic grpc-js client class of gravity.v1.Cache (methods get, set, delete, getMulti, touch, stats). */
export const CacheClientConstructor = makeGenericClientConstructor(CacheService, "Cache");

type Callback<Res> = (error: ServiceError | null, response?: Res) => void;
type Method = (request: unknown, options: CallOptions, callback: Callback<unknown>) => void;

export interface GrpcCacheClientOptions {
  /** grpc-js channel options, e.g. { "grpc.max_receive_message_length": n }. */
  channel?: ChannelOptions;
  /** Each call's deadline from when it is made (default: none). */
  deadlineMs?: number;
}

/** One HTTP/2 connection to a gravity gRPC server (a leaf or a router) at "host:port". */
export class GrpcCacheClient {
  readonly client: Client;
  private readonly deadlineMs: number | undefined;

  constructor(address: string, options: GrpcCacheClientOptions = {}) {
    this.client = new CacheClientConstructor(address, credentials.createInsecure(), options.channel);
    this.deadlineMs = options.deadlineMs;
  }

  private call<Res>(name: keyof typeof CacheService, request: unknown): Promise<Res> {
    const method = (this.client as unknown as Record<string, Method>)[name] as Method;
    const options: CallOptions =
      this.deadlineMs === undefined ? {} : { deadline: Date.now() + this.deadlineMs };
    return new Promise<Res>((resolve, reject) => {
      method.call(this.client, request, options, (error, response) => {
        if (error !== null) reject(error);
        else resolve(response as Res);
      });
    });
  }

  /** `found` false on a miss. */
  get(group: string, key: KeyText): Promise<GetResponse> {
    return this.call("get", { group, key });
  }

  /** `ttlSeconds` is memcached's exptime (0: never expires). */
  async set(group: string, key: KeyText, value: Uint8Array, ttlSeconds = 0): Promise<void> {
    await this.call("set", { group, key, value, ttlSeconds });
  }

  /** False if there was no item. */
  async delete(group: string, key: KeyText): Promise<boolean> {
    return (await this.call<{ deleted: boolean }>("delete", { group, key })).deleted;
  }

  /** One response per key, in the order of `keys`. */
  async getMulti(group: string, keys: readonly KeyText[]): Promise<GetResponse[]> {
    return (await this.call<{ items: GetResponse[] }>("getMulti", { group, keys })).items;
  }

  /** False if there was no item. */
  async touch(group: string, key: KeyText, ttlSeconds: number): Promise<boolean> {
    return (await this.call<{ touched: boolean }>("touch", { group, key, ttlSeconds })).touched;
  }

  /** The server's counters, or with a group that group's call counters. */
  async stats(group = ""): Promise<Map<string, string>> {
    return (await this.call<{ stats: Map<string, string> }>("stats", { group })).stats;
  }

  close(): void {
    this.client.close();
  }
}
