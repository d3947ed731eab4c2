// The metric list follows Prometheus's naming conventions, and the Grafana dashboard
// (deploy/kubernetes/base/grafana-dashboard.json) queries only metrics and labels the list defines.
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import {
  ALL_METRICS,
  CommonMetrics,
  DEFAULT_METRICS,
  GrpcMetrics,
  LeafMetrics,
  METRIC_PREFIX,
  type MetricSpec,
  MetricType,
  RouterMetrics,
} from "./names.ts";

const DASHBOARD = join(import.meta.dir, "../../deploy/kubernetes/base/grafana-dashboard.json");
/** Labels Prometheus adds to every scraped series. */
const TARGET_LABELS = new Set(["job", "instance"]);
const HISTOGRAM_SUFFIXES = ["_bucket", "_sum", "_count"];

describe("names", () => {
  const specs: MetricSpec[] = [
    ...Object.values(CommonMetrics),
    ...Object.values(GrpcMetrics),
    ...Object.values(LeafMetrics),
    ...Object.values(RouterMetrics),
    ...Object.values(DEFAULT_METRICS),
  ];

  test("every name is unique and valid", () => {
    expect(ALL_METRICS.size).toBe(specs.length);
    for (const spec of specs) {
      expect(spec.name).toMatch(/^[a-z_][a-z0-9_]*$/);
      expect(spec.name.startsWith(METRIC_PREFIX)).toBe(true);
      expect(spec.help.length).toBeGreaterThan(10);
      for (const label of spec.labels) expect(label).toMatch(/^[a-z][a-z0-9_]*$/);
      expect(new Set(spec.labels).size).toBe(spec.labels.length);
    }
  });

  test("counters end in _total, nothing else does; histograms are in seconds", () => {
    for (const spec of specs) {
      expect([spec.name, spec.name.endsWith("_total")]).toEqual([
        spec.name,
        spec.type === MetricType.Counter,
      ]);
      if (spec.type === MetricType.Histogram) expect(spec.name).toEndWith("_seconds");
      // A base unit, never a scaled one.
      expect(spec.name).not.toMatch(/_(milliseconds|ms|kb|mb|kilobytes|megabytes)(_|$)/);
    }
  });

  test("leaf, router and gRPC metrics carry their part in the name", () => {
    for (const spec of Object.values(LeafMetrics)) expect(spec.name).toMatch(/^gravity_(store|leaf)_/);
    for (const spec of Object.values(RouterMetrics)) expect(spec.name).toMatch(/^gravity_router_/);
    for (const spec of Object.values(GrpcMetrics)) expect(spec.name).toMatch(/^gravity_grpc_/);
  });
});

interface Target {
  expr: string;
}
interface Panel {
  type: string;
  title: string;
  targets?: Target[];
  panels?: Panel[];
}

function panelsOf(list: Panel[]): Panel[] {
  return list.flatMap((panel) => [panel, ...panelsOf(panel.panels ?? [])]);
}

// The documented metric a series name in a query refers to (a histogram's _bucket/_sum/_count
// series name their histogram), or undefined.
function specOf(series: string): MetricSpec | undefined {
  const direct = ALL_METRICS.get(series);
  if (direct !== undefined) return direct;
  for (const suffix of HISTOGRAM_SUFFIXES) {
    if (!series.endsWith(suffix)) continue;
    const base = ALL_METRICS.get(series.slice(0, -suffix.length));
    if (base?.type === MetricType.Histogram) return base;
  }
  return undefined;
}

const dashboard = (await Bun.file(DASHBOARD).json()) as {
  schemaVersion: number;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: unknown }[] };
};

describe("the Grafana dashboard", () => {
  const panels = panelsOf(dashboard.panels).filter((panel) => panel.type !== "row");
  const exprs = panels.flatMap((panel) =>
    (panel.targets ?? []).map((target) => ({ panel, expr: target.expr })),
  );

  test("is a recent schema with a Prometheus data source variable", () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    const source = dashboard.templating.list.find((variable) => variable.type === "datasource");
    expect(source?.query).toBe("prometheus");
    expect(panels.length).toBeGreaterThanOrEqual(12);
    expect(exprs.length).toBeGreaterThanOrEqual(20);
  });

  test("every series a query names is a documented metric", () => {
    const unknown: string[] = [];
    for (const { panel, expr } of exprs) {
      const series = expr.match(/\bgravity_[a-zA-Z0-9_:]+/g) ?? [];
      expect([panel.title, series.length]).not.toEqual([panel.title, 0]);
      for (const name of series) if (specOf(name) === undefined) unknown.push(`${panel.title}: ${name}`);
    }
    expect(unknown).toEqual([]);
  });

  test("every label a selector or a `by` names belongs to a metric of the query", () => {
    const wrong: string[] = [];
    for (const { panel, expr } of exprs) {
      const allowed = new Set(TARGET_LABELS);
      for (const match of expr.matchAll(/\b(gravity_[a-zA-Z0-9_:]+)(?:\{([^}]*)\})?/g)) {
        const spec = specOf(match[1] as string);
        if (spec === undefined) continue;
        const own = new Set([...spec.labels, ...TARGET_LABELS]);
        if ((match[1] as string).endsWith("_bucket")) own.add("le");
        for (const label of own) allowed.add(label);
        for (const selector of (match[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)/g)) {
          if (!own.has(selector[1] as string)) wrong.push(`${panel.title}: ${match[1]}{${selector[1]}}`);
        }
      }
      for (const by of expr.matchAll(/\bby\s*\(([^)]*)\)/g)) {
        for (const label of (by[1] as string).split(",").map((text) => text.trim())) {
          if (!allowed.has(label)) wrong.push(`${panel.title}: by (${label})`);
        }
      }
    }
    expect(wrong).toEqual([]);
  });

  test("covers the metrics the issue asks for", () => {
    const all = exprs.map(({ expr }) => expr).join("\n");
    for (const name of [
      RouterMetrics.requests.name,
      RouterMetrics.getHits.name,
      LeafMetrics.storeHits.name,
      RouterMetrics.requestDuration.name,
      LeafMetrics.storeBytes.name,
      LeafMetrics.storeItems.name,
      LeafMetrics.storeEvictions.name,
      LeafMetrics.storeAdmissionsRejected.name,
      RouterMetrics.destinationDuration.name,
      RouterMetrics.destinationErrors.name,
      RouterMetrics.destinationDown.name,
      RouterMetrics.hedgesSent.name,
      RouterMetrics.hedgesWon.name,
      RouterMetrics.poolDestinations.name,
    ]) {
      expect(all).toContain(name);
    }
    expect(all).toContain("histogram_quantile(0.5,");
    expect(all).toContain("histogram_quantile(0.99,");
  });
});
