// From a failed parse to one ConfigError: zod's issues flattened to the one problem worth
// reporting (see config.ts), field paths written as code would write them, and the line of a
// syntax error, which neither Bun.YAML.parse nor JSON.parse gives.
import type { z } from "zod";

/** The field named for a problem with the document as a whole. */
export const TOP_LEVEL = "top level";

/** A zod validation issue, and a key in the path of one. */
export type Issue = z.core.$ZodIssue;
export type PathKey = PropertyKey;

/** The expectation for issues whose schema gave no message of its own (zod's defaults are not for humans). */
export function defaultExpectation(issue: z.core.$ZodRawIssue): string {
  switch (issue.code) {
    case "invalid_type":
      return issue.expected === "array" ? "a list" : `a ${issue.expected}`;
    case "invalid_value":
      return `one of ${issue.values.map((value) => JSON.stringify(value)).join(", ")}`;
    default:
      return "a valid value";
  }
}

interface Problem {
  path: readonly PathKey[];
  expected: string;
  /** Whether to show the value found even when it is a list or an object (type errors). */
  showValue: boolean;
  /** A field the schema does not know (a typo, most often). */
  unknown?: true;
  /** The last path element, a record key, is what is wrong (its value is beside the point). */
  key?: true;
}

/** Flattens unions (to the branch the value was meant for), record keys and unknown fields. */
function problems(issues: readonly Issue[], base: readonly PathKey[], out: Problem[]): void {
  for (const issue of issues) {
    const path = [...base, ...issue.path];
    if (issue.code === "invalid_union" && issue.errors.length > 0) {
      // The branch that got past the type check is the one the value was written for.
      const branch = issue.errors.find((branchIssues) => branchIssues.some((inner) => !isMismatch(inner)));
      if (branch !== undefined) problems(branch, path, out);
      else out.push({ path, expected: issue.message, showValue: true });
    } else if (issue.code === "invalid_key") {
      for (const inner of issue.issues)
        out.push({ path, expected: inner.message, showValue: false, key: true });
    } else if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) {
        out.push({ path: [...path, key], expected: issue.message, showValue: false, unknown: true });
      }
    } else {
      out.push({ path, expected: issue.message, showValue: issue.code === "invalid_type" });
    }
  }
}

function isMismatch(issue: Issue): boolean {
  return issue.path.length === 0 && (issue.code === "invalid_type" || issue.code === "invalid_value");
}

/** The one problem to report among `issues` (the first unknown field, else the first), in ConfigError's terms. */
export function firstProblem(issues: readonly Issue[], data: unknown): { field: string; expected: string } {
  const all: Problem[] = [];
  problems(issues, [], all);
  const problem = all.find((candidate) => candidate.unknown) ?? all[0];
  if (problem === undefined) return { field: TOP_LEVEL, expected: "a valid configuration" };
  const value = valueAt(data, problem.path);
  let expected = problem.expected;
  if (problem.unknown || problem.key) {
    // The name is what is wrong, and the path shows it.
  } else if (value.missing) expected += ", but it is missing";
  else if (problem.showValue || isScalar(value.value)) expected += `, got ${describe(value.value)}`;
  return { field: formatPath(problem.path), expected };
}

function valueAt(data: unknown, path: readonly PathKey[]): { missing: boolean; value?: unknown } {
  let value = data;
  for (const key of path) {
    if (value === null || typeof value !== "object" || !Object.hasOwn(value, key)) return { missing: true };
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return { missing: false, value };
}

function isScalar(value: unknown): boolean {
  return value === null || (typeof value !== "object" && typeof value !== "function");
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return "a list";
  if (value !== null && typeof value === "object") return "an object";
  const text = typeof value === "string" ? JSON.stringify(value) : String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** A field path as a reader would write it in code: route.routes["user:"].children[1].pool. */
export function formatPath(path: readonly PathKey[]): string {
  if (path.length === 0) return TOP_LEVEL;
  let text = "";
  for (const key of path) {
    if (typeof key === "number") text += `[${key}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(String(key)))
      text += text === "" ? String(key) : `.${String(key)}`;
    else text += `[${JSON.stringify(String(key))}]`;
  }
  return text;
}

/** The path of the first "__proto__" key in parsed data, if any. */
export function protoKeyPath(data: unknown, path: PathKey[]): PathKey[] | undefined {
  if (data === null || typeof data !== "object") return undefined;
  for (const [key, value] of Object.entries(data)) {
    const at = [...path, Array.isArray(data) ? Number(key) : key];
    if (key === "__proto__") return at;
    const found = protoKeyPath(value, at);
    if (found !== undefined) return found;
  }
  return undefined;
}

// ── Syntax error lines ─────────────────────────────────────────────────────────────────────────
// Neither Bun.YAML.parse nor JSON.parse says where a syntax error is, so the line is found here.

/**
 * YAML: the line after the longest prefix of whole lines that parses. Lines before it are valid
 * YAML; the error is on that line or in a construct (a flow list, a quoted string) opened there.
 */
export function yamlErrorLine(text: string): number | undefined {
  const lines = text.split("\n");
  for (let count = lines.length - 1; count >= 0; count--) {
    try {
      Bun.YAML.parse(lines.slice(0, count).join("\n"));
      return count + 1;
    } catch {
      // Still failing: the error is at or before this prefix's last line.
    }
  }
  return undefined;
}

/** JSON: the line of the first character where the text stops being JSON (RFC 8259 grammar). */
export function jsonErrorLine(text: string): number | undefined {
  let at = 0;
  const fail = (): never => {
    throw at;
  };
  const space = () => {
    while (at < text.length && " \t\n\r".includes(text[at] as string)) at++;
  };
  const token = (pattern: RegExp) => {
    pattern.lastIndex = at;
    if (!pattern.test(text)) fail();
    at = pattern.lastIndex;
  };
  // biome-ignore lint/suspicious/noControlCharactersInRegex: RFC 8259 strings exclude U+0000..U+001F
  const string = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9A-Fa-f]{4}))*"/y;
  const scalar = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null/y;
  const value = (): void => {
    space();
    const open = text[at];
    if (open !== "{" && open !== "[") {
      token(open === '"' ? string : scalar);
      return;
    }
    const close = open === "{" ? "}" : "]";
    at++;
    space();
    if (text[at] === close) {
      at++;
      return;
    }
    for (;;) {
      if (open === "{") {
        space();
        token(string);
        space();
        if (text[at] !== ":") fail();
        at++;
      }
      value();
      space();
      if (text[at] === ",") at++;
      else if (text[at] === close) {
        at++;
        return;
      } else fail();
    }
  };
  try {
    value();
    space();
    if (at < text.length) fail();
    return undefined; // JSON.parse and this grammar disagree: say nothing rather than guess
  } catch (offset) {
    if (typeof offset !== "number") return undefined; // nested too deep for this scanner
    return text.slice(0, offset).split("\n").length;
  }
}
