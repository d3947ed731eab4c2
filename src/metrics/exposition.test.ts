// The exposition reader: families, types, escaped help and label values, histogram samples, and
// errors that name the line; and a round trip through prom-client's own output.
import { describe, expect, test } from "bun:test";
import { Counter, Histogram, Registry } from "prom-client";
import { parseExposition, sampleValue } from "./exposition.ts";

describe("parseExposition", () => {
  test("families with help, type and samples", () => {
    const text = [
      "# HELP gravity_x_total Things\\nwith a \\\\ backslash.",
      "# TYPE gravity_x_total counter",
      'gravity_x_total{op="get",result="hit"} 3',
      'gravity_x_total{op="set",result="a \\"quoted\\" \\\\ \\n"} 1.5e3 1700000000000',
      "# a free comment",
      "",
      "# TYPE gravity_up gauge",
      "gravity_up 1",
      "# TYPE gravity_lat_seconds histogram",
      'gravity_lat_seconds_bucket{le="0.1"} 1',
      'gravity_lat_seconds_bucket{le="+Inf"} 2',
      "gravity_lat_seconds_sum 0.35",
      "gravity_lat_seconds_count 2",
      "untyped_thing NaN",
      "untyped_thing Nan",
    ].join("\n");
    const families = parseExposition(text);
    expect([...families.keys()]).toEqual([
      "gravity_x_total",
      "gravity_up",
      "gravity_lat_seconds",
      "untyped_thing",
    ]);
    const x = families.get("gravity_x_total");
    expect(x?.help).toBe("Things\nwith a \\ backslash.");
    expect(x?.type).toBe("counter");
    expect(x?.samples).toEqual([
      { name: "gravity_x_total", labels: { op: "get", result: "hit" }, value: 3 },
      { name: "gravity_x_total", labels: { op: "set", result: 'a "quoted" \\ \n' }, value: 1500 },
    ]);
    expect(families.get("gravity_lat_seconds")?.samples.map((sample) => sample.name)).toEqual([
      "gravity_lat_seconds_bucket",
      "gravity_lat_seconds_bucket",
      "gravity_lat_seconds_sum",
      "gravity_lat_seconds_count",
    ]);
    expect(sampleValue(families, "gravity_lat_seconds", { le: "+Inf" }, "gravity_lat_seconds_bucket")).toBe(
      2,
    );
    expect(sampleValue(families, "gravity_x_total", { op: "get" })).toBe(3);
    expect(sampleValue(families, "gravity_x_total", { op: "absent" })).toBeUndefined();
    expect(families.get("untyped_thing")?.type).toBe("untyped");
    expect(families.get("untyped_thing")?.samples[0]?.value).toBeNaN();
    expect(families.get("untyped_thing")?.samples[1]?.value).toBeNaN();
  });

  test("malformed lines throw naming the line", () => {
    const bad = [
      'm{op="x} 1',
      "m{op=x} 1",
      'm{op="x" 1',
      "m abc",
      "m",
      'm{op="\\t"} 1',
      "# TYPE m bogus",
      "9m 1",
    ];
    for (const line of bad) expect(() => parseExposition(`ok 1\n${line}\n`)).toThrow(/line 2: /);
  });

  test("reads what prom-client writes", async () => {
    const registry = new Registry();
    const counter = new Counter({ name: "t_total", help: "h", labelNames: ["k"], registers: [registry] });
    const histogram = new Histogram({
      name: "t_seconds",
      help: "h",
      buckets: [0.1, 1],
      registers: [registry],
    });
    counter.inc({ k: 'a"b' }, 2);
    histogram.observe(0.5);
    const families = parseExposition(await registry.metrics());
    expect(sampleValue(families, "t_total", { k: 'a"b' })).toBe(2);
    expect(families.get("t_seconds")?.type).toBe("histogram");
    expect(sampleValue(families, "t_seconds", { le: "1" }, "t_seconds_bucket")).toBe(1);
    expect(sampleValue(families, "t_seconds", { le: "0.1" }, "t_seconds_bucket")).toBe(0);
    expect(sampleValue(families, "t_seconds", {}, "t_seconds_sum")).toBe(0.5);
  });
});
