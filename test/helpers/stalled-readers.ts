// Clients that ask for large replies and never read them, on each front door (memcached text
// protocol, HTTP/1.1, gRPC over HTTP/2), and a sampler of a process's RSS while they do: what the
// fault suite's memory bounds are measured with (test/fault-bounds.test.ts,
// test/fault-stalled-leaf.test.ts, src/grpc/reply-hold.test.ts).
import * as http2 from "node:http2";
import { connect, type Socket } from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { GetRequestSchema } from "../../src/grpc/generated/gravity_pb.ts";
import { McClient } from "./mc-client.ts";
import { rssBytes } from "./servers.ts";

/** Samples VmRSS of `pid` every few ms until stopped; resolves with the largest sample. */
export function sampleRss(pid: number): { stop(): Promise<number> } {
  let running = true;
  const sampled = (async () => {
    let peak = 0;
    while (running) {
      peak = Math.max(peak, await rssBytes(pid));
      await Bun.sleep(5);
    }
    return peak;
  })();
  return {
    stop: () => {
      running = false;
      return sampled;
    },
  };
}

/** Stalled clients; close() ends every connection. */
export interface Stalled {
  close(): void;
}

/** `clients` memcached connections that each send `request` `repeat` times and never read. */
export async function stallMemcached(
  port: number,
  clients: number,
  request: string,
  repeat: number,
): Promise<Stalled> {
  const open: McClient[] = [];
  for (let i = 0; i < clients; i++) {
    const client = await McClient.connect(port);
    client.pause();
    await client.send(request.repeat(repeat));
    open.push(client);
  }
  return {
    close: () => {
      for (const client of open) client.reset();
    },
  };
}

/** `clients` HTTP/1.1 connections that each pipeline `repeat` GETs of `path` and never read. */
export async function stallHttp(
  port: number,
  clients: number,
  path: string,
  repeat: number,
): Promise<Stalled> {
  const open: Socket[] = [];
  for (let i = 0; i < clients; i++) {
    const socket = connect(port, "127.0.0.1");
    await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
    socket.pause();
    socket.on("error", () => {}); // reset by the server when it stops: nothing to do
    socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`.repeat(repeat));
    open.push(socket);
  }
  return {
    close: () => {
      for (const socket of open) socket.destroy();
    },
  };
}

/**
 * `clients` HTTP/2 connections that each open `streams` gravity.v1.Cache/Get calls for `key` of
 * `group`, with a flow-control window of one byte that they never open further (no WINDOW_UPDATE):
 * the server can send each reply's first byte only.
 */
export async function stallGrpc(
  port: number,
  clients: number,
  streams: number,
  group: string,
  key: string,
): Promise<Stalled> {
  const message = toBinary(
    GetRequestSchema,
    create(GetRequestSchema, { group, key: new TextEncoder().encode(key) }),
  );
  const frame = new Uint8Array(5 + message.length);
  new DataView(frame.buffer).setUint32(1, message.length);
  frame.set(message, 5);
  const sessions: http2.ClientHttp2Session[] = [];
  for (let i = 0; i < clients; i++) {
    const session = http2.connect(`http://127.0.0.1:${port}`, { settings: { initialWindowSize: 1 } });
    session.on("error", () => {}); // reset when the server stops: nothing to do
    await new Promise<void>((resolve, reject) =>
      session.once("connect", () => resolve()).once("error", reject),
    );
    for (let s = 0; s < streams; s++) {
      const call = session.request({
        ":method": "POST",
        ":path": "/gravity.v1.Cache/Get",
        "content-type": "application/grpc",
        te: "trailers",
      });
      call.on("error", () => {});
      call.pause();
      call.end(frame);
    }
    sessions.push(session);
  }
  return {
    close: () => {
      for (const session of sessions) session.destroy();
    },
  };
}
