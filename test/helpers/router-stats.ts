// Asking a running router or leaf about itself over the memcached port: `stats` as a map, and the
// router's introspection (`get __gravity__.route(OP,KEY)`, src/router/introspection.ts).
import { fromLatin1, McClient } from "./mc-client.ts";

/** A server's `stats` (or `stats <group>`) as a map of name to value. */
export async function statsOf(port: number, group = ""): Promise<Map<string, string>> {
  const client = await McClient.connect(port);
  try {
    await client.send(group === "" ? "stats\r\n" : `stats ${group}\r\n`);
    const text = fromLatin1(await client.readThroughLine("END"));
    const lines = text.split("\r\n").filter((line) => line.startsWith("STAT "));
    return new Map(lines.map((line) => line.slice(5).split(" ", 2) as [string, string]));
  } finally {
    client.close();
  }
}

/** One number of a server's `stats`. */
export async function statOf(port: number, name: string): Promise<number> {
  const value = (await statsOf(port)).get(name);
  if (value === undefined) throw new Error(`no stat ${name} from port ${port}`);
  return Number(value);
}

/**
 * The router's answer to `get __gravity__.route(<op>,<key>)`: one line per leaf the command would
 * reach now, "host:port role" (e.g. "127.0.0.1:4000 shard", "... read", "... gutter").
 */
export async function routeLines(routerPort: number, op: string, key: string): Promise<string[]> {
  const client = await McClient.connect(routerPort);
  try {
    await client.send(`get __gravity__.route(${op},${key})\r\n`);
    const text = fromLatin1(await client.readThroughLine("END"));
    return text.split("\r\n").filter((line) => /^\S+:\d+ /.test(line));
  } finally {
    client.close();
  }
}

/**
 * The value of one series on a Prometheus /metrics page: `name` with exactly `labels` (none by
 * default). Throws if the page has no such series.
 */
export async function metricValue(
  url: string,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const text = await (await fetch(url)).text();
  const rendered = Object.entries(labels)
    .map(([label, value]) => `${label}="${value}"`)
    .join(",");
  const series = rendered === "" ? name : `${name}{${rendered}}`;
  for (const line of text.split("\n")) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  throw new Error(`no series ${series} on ${url}`);
}
