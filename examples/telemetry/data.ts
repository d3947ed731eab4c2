// Generated telemetry for network functions (5G core functions: AMF, SMF, UPF...): for each
// function and metric, the latest sample as a row of schema.sql. Deterministic for a seed; the
// example (run.ts) and the origin-load benchmark (bench/origin-load.ts) fill their databases here.
//
//   key      nf:<function>.<metric>          e.g. nf:upf-0007.cpu_util
//   value    {"function":"upf-0007","metric":"cpu_util","ts":1764000000,"value":0.4213}
import { Database } from "bun:sqlite";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { SQL } from "bun";
import { Rng } from "../../bench/workloads.ts";

/** The cache group of every telemetry item: HTTP /v1/cache/nf/<key>, gRPC group "nf". */
export const GROUP = "nf";
/** The functions' kinds, cycled: function i is `${KINDS[i % KINDS.length]}-${i}`. */
export const KINDS = ["amf", "smf", "upf", "nrf", "pcf", "ausf"] as const;
/** The metrics every function reports, with the range of their values. */
export const METRICS: Readonly<Record<string, readonly [number, number]>> = {
  cpu_util: [0, 1],
  mem_used_bytes: [1e8, 8e9],
  sessions_active: [0, 200_000],
  throughput_bps: [1e6, 4e10],
  latency_p99_ms: [0.2, 40],
  route_count: [10, 5000],
};
export const SCHEMA_SQL = readFileSync(join(import.meta.dir, "schema.sql"), "utf8");

/** The loader's query for a database, by its URL scheme: PostgreSQL numbers its placeholders. */
export function lookupQuery(url: string | undefined): string {
  const param = url !== undefined && /^postgres(ql)?:/.test(url) ? "$1" : "?";
  return `SELECT document FROM telemetry WHERE item_key = ${param}`;
}

/** One row of the telemetry table. */
export interface TelemetryRow {
  itemKey: string;
  functionId: string;
  metric: string;
  sampledAt: number;
  value: number;
  document: string;
}

/** The id of function `index`, e.g. "upf-0007". */
export function functionId(index: number): string {
  return `${KINDS[index % KINDS.length]}-${String(index).padStart(4, "0")}`;
}

/** The item key (without the group) of `metric` of function `index`: "upf-0007.cpu_util". */
export function itemKey(index: number, metric: string): string {
  return `${functionId(index)}.${metric}`;
}

/** Every row for `functions` functions, deterministic for `seed`, sampled at `nowSeconds`. */
export function* telemetryRows(functions: number, seed: number, nowSeconds: number): Generator<TelemetryRow> {
  const rng = new Rng(seed);
  for (let i = 0; i < functions; i++) {
    for (const [metric, [low, high]] of Object.entries(METRICS)) {
      const value = Number((low + rng.nextDouble() * (high - low)).toPrecision(6));
      const sampledAt = nowSeconds - rng.nextInt(60);
      const id = functionId(i);
      yield {
        itemKey: `${GROUP}:${itemKey(i, metric)}`,
        functionId: id,
        metric,
        sampledAt,
        value,
        document: JSON.stringify({ function: id, metric, ts: sampledAt, value }),
      };
    }
  }
}

const COLUMNS = "item_key, function_id, metric, sampled_at, value, document";

/** Creates the table in a new SQLite file at `path` (replacing one there) and fills it. */
export function fillSqlite(path: string, rows: Iterable<TelemetryRow>): number {
  const db = new Database(path, { create: true });
  try {
    db.run("DROP TABLE IF EXISTS telemetry");
    db.run(SCHEMA_SQL);
    const insert = db.prepare(`INSERT INTO telemetry (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)`);
    let count = 0;
    db.transaction(() => {
      for (const row of rows) {
        insert.run(row.itemKey, row.functionId, row.metric, row.sampledAt, row.value, row.document);
        count++;
      }
    })();
    return count;
  } finally {
    db.close();
  }
}

/** Creates the table in the database at `url` (MySQL/MariaDB or PostgreSQL; replacing it) and fills it. */
export async function fillSql(url: string, rows: Iterable<TelemetryRow>): Promise<number> {
  const sql = new SQL({ url, max: 1 });
  try {
    await sql.unsafe("DROP TABLE IF EXISTS telemetry");
    await sql.unsafe(SCHEMA_SQL.replace(/^--.*$/gm, ""));
    let count = 0;
    let batch: TelemetryRow[] = [];
    const flush = async () => {
      if (batch.length === 0) return;
      await sql`INSERT INTO telemetry ${sql(
        batch.map((row) => ({
          item_key: row.itemKey,
          function_id: row.functionId,
          metric: row.metric,
          sampled_at: row.sampledAt,
          value: row.value,
          document: row.document,
        })),
      )}`;
      count += batch.length;
      batch = [];
    };
    for (const row of rows) {
      batch.push(row);
      if (batch.length === 500) await flush();
    }
    await flush();
    return count;
  } finally {
    await sql.close();
  }
}
