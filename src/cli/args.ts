// Flag parsing for the gravity subcommands: `--name value`, `--name=value`, memcached's short
// forms where a flag has one (`-p 11211`, `-p11211`, `-vv`), and GRAVITY_NAME environment variables
// (flag > environment > default). A bad value throws UsageError naming the flag as it was given.
import { UsageError } from "../errors.ts";

export const FlagKind = {
  String: "string",
  Integer: "integer",
  Bytes: "bytes",
  Boolean: "boolean",
  /** How many times it was given (`-v`, `-vv`, `--verbose`); `--name=N` or the environment sets it. */
  Count: "count",
} as const;
export type FlagKind = (typeof FlagKind)[keyof typeof FlagKind];

/** One flag of a subcommand. `min`/`max` bound integers and byte sizes. */
export interface FlagSpec {
  name: string;
  kind: FlagKind;
  default: string | number | boolean;
  help: string;
  min?: number;
  max?: number;
  /** For string flags: the only values accepted. */
  choices?: readonly string[];
  /** memcached's one-letter form, e.g. "p" for -p (count flags repeat it: -vv). */
  short?: string;
  /** Byte flags: what a bare number given in the short form counts (memcached's -m is megabytes). */
  shortUnitBytes?: number;
  /** Byte flags: what a share such as `70%` is a share of, in bytes (read when such a value is given). */
  percentOf?: () => number;
}

export type FlagValues = Record<string, string | number | boolean>;

const BYTE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kb: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
};

/** Parses a size such as `64mb`, `1g`, `512k` or `1048576` into bytes (units are powers of 1024). */
export function parseBytes(text: string): number | null {
  const match = /^(\d+)\s*([a-z]*)$/i.exec(text.trim());
  if (match === null) return null;
  const unit = BYTE_UNITS[(match[2] ?? "").toLowerCase()];
  if (unit === undefined) return null;
  return Number(match[1]) * unit;
}

/** The environment variable that can set a flag: --max-item-size -> GRAVITY_MAX_ITEM_SIZE. */
export function envName(flag: string): string {
  return `GRAVITY_${flag.toUpperCase().replace(/-/g, "_")}`;
}

function convert(spec: FlagSpec, raw: string, source: string): string | number | boolean {
  const bad = (expected: string): UsageError =>
    new UsageError(`${source}: expected ${expected}, got ${JSON.stringify(raw)}`);
  switch (spec.kind) {
    case FlagKind.String:
      if (raw === "") throw bad("a value");
      if (spec.choices !== undefined && !spec.choices.includes(raw))
        throw bad(`one of ${spec.choices.join(", ")}`);
      return raw;
    case FlagKind.Boolean:
      if (raw === "true" || raw === "1" || raw === "") return true;
      if (raw === "false" || raw === "0") return false;
      throw bad("true or false");
    case FlagKind.Count:
    case FlagKind.Integer: {
      if (!/^-?\d+$/.test(raw)) throw bad("an integer");
      const value = Number(raw);
      checkRange(spec, value, source, raw);
      return value;
    }
    case FlagKind.Bytes: {
      const share = spec.percentOf === undefined ? null : /^(\d+(?:\.\d+)?)%$/.exec(raw.trim());
      if (share !== null && spec.percentOf !== undefined) {
        const percent = Number(share[1]);
        if (percent <= 0 || percent > 100) throw bad("a share between 0% and 100%");
        const value = Math.floor((spec.percentOf() * percent) / 100);
        checkRange(spec, value, source, raw);
        return value;
      }
      const value = parseBytes(raw);
      if (value === null) {
        throw bad(
          spec.percentOf === undefined
            ? "a size such as 64mb, 1g, 512k or a number of bytes"
            : "a size such as 64mb, 1g, 512k, a number of bytes, or a share such as 70%",
        );
      }
      checkRange(spec, value, source, raw);
      return value;
    }
  }
}

function checkRange(spec: FlagSpec, value: number, source: string, raw: string): void {
  const show = (n: number) => (spec.kind === FlagKind.Bytes ? `${n} bytes` : String(n));
  if (spec.min !== undefined && value < spec.min) {
    throw new UsageError(`${source}: must be at least ${show(spec.min)}, got ${JSON.stringify(raw)}`);
  }
  if (spec.max !== undefined && value > spec.max) {
    throw new UsageError(`${source}: must be at most ${show(spec.max)}, got ${JSON.stringify(raw)}`);
  }
}

/** Parses argv (after the subcommand) against specs, filling from env and defaults. */
export function parseFlags(
  argv: readonly string[],
  specs: readonly FlagSpec[],
  env: Record<string, string | undefined> = process.env,
): FlagValues {
  const byName = new Map(specs.map((spec) => [spec.name, spec]));
  const byShort = new Map(specs.filter((spec) => spec.short !== undefined).map((spec) => [spec.short, spec]));
  const values: FlagValues = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (/^-[^-]/.test(arg)) {
      i += parseShort(arg, argv[i + 1], byShort, values);
      continue;
    }
    if (!arg.startsWith("--")) throw new UsageError(`unexpected argument ${JSON.stringify(arg)}`);
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    const spec = byName.get(name);
    if (spec === undefined) throw new UsageError(`unknown flag --${name}`);
    let raw: string;
    if (eq !== -1) {
      raw = arg.slice(eq + 1);
    } else if (spec.kind === FlagKind.Boolean) {
      raw = "true";
    } else if (spec.kind === FlagKind.Count) {
      values[name] = counted(spec, values, 1, `--${name}`);
      continue;
    } else {
      const next = argv[i + 1];
      if (next === undefined) throw new UsageError(`--${name}: missing value`);
      raw = next;
      i++;
    }
    values[name] = convert(spec, raw, `--${name}`);
  }
  // Flags not given come from the environment, then from the default.
  for (const spec of specs) {
    if (spec.name in values) continue;
    const fromEnv = env[envName(spec.name)];
    if (fromEnv !== undefined) {
      values[spec.name] = convert(spec, fromEnv, envName(spec.name));
    } else {
      // Defaults written as text ("64mb") go through the same conversion as flags; a string
      // flag's default is taken as is ("" = not set, for flags whose absence means something).
      values[spec.name] =
        typeof spec.default === "string" && spec.kind !== FlagKind.String
          ? convert(spec, spec.default, `default of --${spec.name}`)
          : spec.default;
    }
  }
  return values;
}

// One short flag: `-p 11211` or `-p11211` (returns 1 when the value was the next argument), or a
// run of count flags (`-vv`). The error names the flag as given.
function parseShort(
  arg: string,
  next: string | undefined,
  byShort: ReadonlyMap<string | undefined, FlagSpec>,
  values: FlagValues,
): number {
  const letter = arg[1] as string;
  const spec = byShort.get(letter);
  if (spec === undefined) throw new UsageError(`unknown flag -${letter}`);
  if (spec.kind === FlagKind.Count) {
    if (![...arg.slice(1)].every((each) => each === letter))
      throw new UsageError(`${arg}: -${letter} takes no value (repeat it: -${letter}${letter})`);
    values[spec.name] = counted(spec, values, arg.length - 1, arg);
    return 0;
  }
  if (spec.kind === FlagKind.Boolean) {
    if (arg.length > 2) throw new UsageError(`${arg}: -${letter} takes no value`);
    values[spec.name] = true;
    return 0;
  }
  const inline = arg.slice(2);
  const raw = inline !== "" ? inline : next;
  if (raw === undefined) throw new UsageError(`-${letter}: missing value`);
  const bare = spec.kind === FlagKind.Bytes && spec.shortUnitBytes !== undefined && /^\d+$/.test(raw);
  values[spec.name] = bare
    ? checkedBytes(spec, Number(raw) * (spec.shortUnitBytes as number), `-${letter}`, raw)
    : convert(spec, raw, `-${letter}`);
  return inline !== "" ? 0 : 1;
}

// A count flag given `times` more times, within its range.
function counted(spec: FlagSpec, values: FlagValues, times: number, source: string): number {
  const count = ((values[spec.name] as number | undefined) ?? 0) + times;
  checkRange(spec, count, source, source);
  return count;
}

function checkedBytes(spec: FlagSpec, value: number, source: string, raw: string): number {
  checkRange(spec, value, source, raw);
  return value;
}

/** The flags section of a subcommand's --help. */
export function flagHelp(specs: readonly FlagSpec[]): string {
  const rows = specs.map((spec) => {
    const value = spec.kind === FlagKind.Boolean || spec.kind === FlagKind.Count ? "" : " VALUE";
    const short = spec.short === undefined ? "" : `-${spec.short}, `;
    const left = `  ${short}--${spec.name}${value}`;
    // A default the help already explains ("(default: --listen)") or that is empty is not repeated.
    const defaultText =
      spec.help.includes("(default") || spec.default === "" ? "" : `default ${String(spec.default)}; `;
    return `${left.padEnd(32)}${spec.help} (${defaultText}env ${envName(spec.name)})`;
  });
  return rows.join("\n");
}
