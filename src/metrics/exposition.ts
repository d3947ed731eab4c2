// A reader of Prometheus's text exposition format (version 0.0.4, what /metrics serves), for tests
// and tools that scrape a gravity process. prometheus.io/docs/instrumenting/exposition_formats:
//
//   # HELP <name> <help, with \\ and \n escaped>
//   # TYPE <name> counter|gauge|histogram|summary|untyped
//   <name>[{<label>="<value, with \\ \" \n escaped>",...}] <value> [<timestamp ms>]
//
// A histogram family's samples are <name>_bucket{le=...}, <name>_sum and <name>_count.

/** One sample line. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** A metric family: its HELP, TYPE and samples in the order served. */
export interface MetricFamily {
  readonly name: string;
  help: string;
  type: string;
  readonly samples: Sample[];
}

const SAMPLE_SUFFIXES = ["_bucket", "_sum", "_count", "_created"];

/** Parses a whole exposition; throws an Error naming the line for anything malformed. */
export function parseExposition(text: string): Map<string, MetricFamily> {
  const families = new Map<string, MetricFamily>();
  const family = (name: string): MetricFamily => {
    let found = families.get(name);
    if (found === undefined) {
      found = { name, help: "", type: "untyped", samples: [] };
      families.set(name, found);
    }
    return found;
  };
  const lines = text.split("\n");
  lines.forEach((line, index) => {
    const where = `line ${index + 1}: ${JSON.stringify(line)}`;
    if (line.trim() === "") return;
    if (line.startsWith("#")) {
      const comment = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) ?(.*)$/.exec(line);
      if (comment === null) return; // other comments are allowed and mean nothing
      const [, keyword, name, rest] = comment as unknown as [string, string, string, string];
      if (keyword === "HELP") family(name).help = unescapeHelp(rest);
      else {
        if (!/^(counter|gauge|histogram|summary|untyped)$/.test(rest)) throw new Error(`${where}: bad type`);
        family(name).type = rest;
      }
      return;
    }
    const sample = parseSample(line, where);
    family(familyOf(sample.name, families)).samples.push(sample);
  });
  return families;
}

// The family a sample belongs to: its own name if declared, else its name without a histogram or
// summary suffix.
function familyOf(sampleName: string, families: ReadonlyMap<string, MetricFamily>): string {
  if (families.has(sampleName)) return sampleName;
  for (const suffix of SAMPLE_SUFFIXES) {
    if (sampleName.endsWith(suffix)) {
      const base = sampleName.slice(0, -suffix.length);
      if (families.has(base)) return base;
    }
  }
  return sampleName;
}

function parseSample(line: string, where: string): Sample {
  const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
  if (nameMatch === null) throw new Error(`${where}: no metric name`);
  const name = nameMatch[0];
  let at = name.length;
  const labels: Record<string, string> = {};
  if (line[at] === "{") {
    at++;
    for (;;) {
      if (line[at] === "}") {
        at++;
        break;
      }
      const labelMatch = /^([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(line.slice(at));
      if (labelMatch === null) throw new Error(`${where}: bad label at column ${at + 1}`);
      at += labelMatch[0].length;
      let value = "";
      for (;;) {
        const char = line[at];
        if (char === undefined) throw new Error(`${where}: unterminated label value`);
        at++;
        if (char === '"') break;
        if (char === "\\") {
          const escaped = line[at++];
          if (escaped === "n") value += "\n";
          else if (escaped === "\\" || escaped === '"') value += escaped;
          else throw new Error(`${where}: bad escape \\${escaped ?? ""}`);
        } else value += char;
      }
      labels[labelMatch[1] as string] = value;
      if (line[at] === ",") at++;
      else if (line[at] !== "}") throw new Error(`${where}: expected , or } at column ${at + 1}`);
    }
  }
  const fields = line.slice(at).trim().split(/\s+/);
  if (fields.length < 1 || fields.length > 2 || fields[0] === "") throw new Error(`${where}: bad value`);
  const value = parseValue(fields[0] as string);
  if (value === undefined) throw new Error(`${where}: bad value ${fields[0]}`);
  return { name, labels, value };
}

// Go's strconv.ParseFloat, as Prometheus reads values: Inf and NaN in any case (prom-client
// writes "Nan").
function parseValue(text: string): number | undefined {
  const lower = text.toLowerCase();
  if (lower === "+inf" || lower === "inf") return Number.POSITIVE_INFINITY;
  if (lower === "-inf") return Number.NEGATIVE_INFINITY;
  if (lower === "nan") return Number.NaN;
  const value = Number(text);
  return Number.isNaN(value) ? undefined : value;
}

function unescapeHelp(text: string): string {
  return text.replace(/\\(\\|n)/g, (_, escaped: string) => (escaped === "n" ? "\n" : "\\"));
}

/** The value of the sample of `family` whose labels include `labels`, or undefined. */
export function sampleValue(
  families: ReadonlyMap<string, MetricFamily>,
  name: string,
  labels: Readonly<Record<string, string>> = {},
  sampleName = name,
): number | undefined {
  const family = families.get(name);
  if (family === undefined) return undefined;
  const sample = family.samples.find(
    (candidate) =>
      candidate.name === sampleName &&
      Object.entries(labels).every(([key, value]) => candidate.labels[key] === value),
  );
  return sample?.value;
}
