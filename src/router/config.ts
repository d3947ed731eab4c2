// The router's configuration file: pools of leaves and the route tree over them.
//
//   file (.yaml/.yml/.json) ──read──> text ──Bun.YAML.parse | JSON.parse──> plain data
//     ──zod schema (built knowing the pool names)──> RouterConfig, every default applied
//   any failure ──> one ConfigError: "<file>: <field path>: expected <what>[, got <value>]"
//
// Validation reports one problem: the first unknown field if there is one (a typo usually also
// makes a required field look missing, and the unknown name is the useful clue), else the first
// problem in schema order (listen, pools, route; fields in the order config-types.ts lists them).
//
// The parts: config-types.ts (RouterConfig and its defaults, re-exported here), config-schema.ts
// (the zod schema), config-errors.ts (issues and syntax errors to one ConfigError's words).
import { readFileSync } from "node:fs";
import { ConfigError } from "../errors.ts";
import {
  defaultExpectation,
  firstProblem,
  formatPath,
  jsonErrorLine,
  protoKeyPath,
  TOP_LEVEL,
  yamlErrorLine,
} from "./config-errors.ts";
import { configSchema, poolFacts, TOP_LEVEL_EXPECTED } from "./config-schema.ts";
import type { RouterConfig } from "./config-types.ts";

export { formatPath } from "./config-errors.ts";
export {
  Distribution,
  type EtcdConfig,
  type FailoverRouteConfig,
  type GutterRouteConfig,
  HEDGE_DEFAULTS,
  type HedgeSpec,
  type ListenAddress,
  type LoaderConfig,
  type LoaderRouteConfig,
  type MissFailoverRouteConfig,
  type NatsConfig,
  OnDown,
  type OperationRouteConfig,
  POOL_DEFAULTS,
  type PoolConfig,
  type PrefixRouteConfig,
  REPAIR_DEFAULTS,
  ReadPolicy,
  type ReadRepairSpec,
  type ReplicatedRouteConfig,
  type RouteConfig,
  type RouterConfig,
  RouteType,
  type ServerAddress,
  type ShardedRouteConfig,
  type TkoConfig,
  type WarmUpRouteConfig,
  WritePolicy,
} from "./config-types.ts";

/** The syntax of a configuration file, chosen by its extension. */
export const ConfigFormat = { Yaml: "yaml", Json: "json" } as const;
export type ConfigFormat = (typeof ConfigFormat)[keyof typeof ConfigFormat];

/** The format for a file name: .yaml and .yml are YAML, .json is JSON (any case); else undefined. */
export function configFormatOf(file: string): ConfigFormat | undefined {
  const extension = /\.([^./\\]+)$/.exec(file)?.[1]?.toLowerCase();
  if (extension === "yaml" || extension === "yml") return ConfigFormat.Yaml;
  if (extension === "json") return ConfigFormat.Json;
  return undefined;
}

/** Reads, parses and validates a configuration file. Throws ConfigError for every problem, I/O included. */
export function loadConfig(file: string): RouterConfig {
  const format = requireConfigFormat(file);
  return parseConfig(readConfigText(file), file, format);
}

/** The format of a configuration file by its extension; throws ConfigError for any other name. */
export function requireConfigFormat(file: string): ConfigFormat {
  const format = configFormatOf(file);
  if (format === undefined) throw new ConfigError(file, "file name", "a .yaml, .yml or .json extension");
  return format;
}

/** A configuration file's text (UTF-8); throws ConfigError naming the reason (ENOENT, EACCES...). */
export function readConfigText(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new ConfigError(file, "file", `a readable file (${reason})`, { cause: error });
  }
}

/** Parses and validates configuration text; `file` names it in errors. Throws ConfigError. */
export function parseConfig(text: string, file: string, format: ConfigFormat): RouterConfig {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // a byte order mark
  let data: unknown;
  try {
    data = format === ConfigFormat.Json ? JSON.parse(text) : Bun.YAML.parse(text);
  } catch (error) {
    const reason = error instanceof Error ? error.message.replace(/^\w+ Parse error: /, "") : String(error);
    const line = format === ConfigFormat.Json ? jsonErrorLine(text) : yamlErrorLine(text);
    const where = line === undefined ? "syntax" : `line ${line}`;
    const syntax = format === ConfigFormat.Json ? "JSON" : "YAML";
    throw new ConfigError(file, where, `valid ${syntax} (${reason})`, { cause: error });
  }
  if (data === null || data === undefined) {
    throw new ConfigError(file, TOP_LEVEL, `${TOP_LEVEL_EXPECTED}, got an empty document`);
  }
  // zod's records drop a "__proto__" key without a word (it cannot be assigned as a plain key).
  const proto = protoKeyPath(data, []);
  if (proto !== undefined) throw new ConfigError(file, formatPath(proto), "a name other than __proto__");
  const result = configSchema(poolFacts(data)).safeParse(data, { error: defaultExpectation });
  if (result.success) return result.data;
  const problem = firstProblem(result.error.issues, data);
  throw new ConfigError(file, problem.field, problem.expected, { cause: result.error });
}
