// Charts for the benchmark suites: a Vega-Lite spec rendered to SVG in Bun with Vega's headless
// View (renderer "none", then toSVG()), so no browser or canvas is involved. Suites build a spec
// (lineChartSpec() for the usual "metric against a parameter, one line per system" chart,
// barChartSpec() for "one figure per system, side by side") from the JSON they wrote, and
// writeChart() renders it.
//
//   results JSON ──> lineChartSpec() | barChartSpec() ──vega-lite compile──> Vega spec
//                ──View.toSVG()──> .svg
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { parse, View } from "vega";
import { compile, type TopLevelSpec } from "vega-lite";

/** One measured point of a series. */
export interface LinePoint {
  series: string;
  x: number;
  y: number;
}

export interface LineChartOptions {
  title: string;
  subtitle?: string;
  xTitle: string;
  yTitle: string;
  points: readonly LinePoint[];
  /** Legend and colour order; defaults to the order series first appear in `points`. */
  seriesOrder?: readonly string[];
  /** The y scale: "linear" from zero (default), or "log" for values spanning decades (latency tails). */
  yScale?: "linear" | "log";
  /** Plot area in pixels. */
  width?: number;
  height?: number;
}

/**
 * A line chart with a point on each measurement and one coloured line per series. The x values
 * are evenly spaced categories (1, 2, 4, 8, 16 threads read best that way), in numeric order.
 */
export function lineChartSpec(options: LineChartOptions): TopLevelSpec {
  const order = options.seriesOrder ?? [...new Set(options.points.map((p) => p.series))];
  const xValues = [...new Set(options.points.map((p) => p.x))].sort((a, b) => a - b);
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title:
      options.subtitle === undefined ? options.title : { text: options.title, subtitle: options.subtitle },
    width: options.width ?? 480,
    height: options.height ?? 300,
    background: "white",
    data: { values: options.points.map((p) => ({ ...p })) },
    mark: { type: "line", point: true },
    encoding: {
      x: { field: "x", type: "ordinal", title: options.xTitle, sort: xValues, axis: { labelAngle: 0 } },
      y: {
        field: "y",
        type: "quantitative",
        title: options.yTitle,
        scale: options.yScale === "log" ? { type: "log" } : { zero: true },
      },
      color: {
        field: "series",
        type: "nominal",
        title: null,
        sort: [...order],
        scale: { domain: [...order] },
        legend: { labelLimit: 400 },
      },
    },
    config: { font: "sans-serif" },
  };
}

/** One bar: a series' value in a category, with an optional range drawn as a whisker. */
export interface Bar {
  category: string;
  series: string;
  value: number;
  /** The whisker's ends (e.g. the min and max of the repeats whose median is `value`). */
  low?: number;
  high?: number;
}

export interface BarChartOptions {
  title: string;
  subtitle?: string;
  xTitle: string;
  yTitle: string;
  bars: readonly Bar[];
  /** Legend, colour and in-group order; defaults to the order series first appear in `bars`. */
  seriesOrder?: readonly string[];
  /** Category order along x; defaults to the order categories first appear in `bars`. */
  categoryOrder?: readonly string[];
  /** Angle of the category labels in degrees: 0 (default) level, negative to slant long labels. */
  labelAngle?: number;
  /** Plot area in pixels. */
  width?: number;
  height?: number;
}

/**
 * Grouped bars: one group per category along x, one coloured bar per series inside it, y from
 * zero. Bars that carry `low` and `high` get a whisker over that range.
 */
export function barChartSpec(options: BarChartOptions): TopLevelSpec {
  const order = options.seriesOrder ?? [...new Set(options.bars.map((b) => b.series))];
  const categories = options.categoryOrder ?? [...new Set(options.bars.map((b) => b.category))];
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title:
      options.subtitle === undefined ? options.title : { text: options.title, subtitle: options.subtitle },
    width: options.width ?? 480,
    height: options.height ?? 300,
    background: "white",
    data: { values: options.bars.map((b) => ({ ...b })) },
    encoding: {
      x: {
        field: "category",
        type: "nominal",
        title: options.xTitle,
        sort: [...categories],
        axis: { labelAngle: options.labelAngle ?? 0, labelLimit: 400 },
      },
      xOffset: { field: "series", type: "nominal", sort: [...order], scale: { domain: [...order] } },
    },
    layer: [
      {
        mark: { type: "bar" },
        encoding: {
          y: { field: "value", type: "quantitative", title: options.yTitle, scale: { zero: true } },
          color: {
            field: "series",
            type: "nominal",
            title: null,
            sort: [...order],
            scale: { domain: [...order] },
            legend: { labelLimit: 400 },
          },
        },
      },
      {
        // Whiskers, for the bars that have a range; the others draw nothing here.
        transform: [{ filter: "isValid(datum.low) && isValid(datum.high)" }],
        mark: { type: "rule", color: "black" },
        encoding: { y: { field: "low", type: "quantitative" }, y2: { field: "high" } },
      },
    ],
    config: { font: "sans-serif" },
  };
}

/** Renders a Vega-Lite spec to an SVG document. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new View(parse(compile(spec).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Renders a Vega-Lite spec and writes the SVG to `path` (creating its directory). */
export async function writeChart(path: string, spec: TopLevelSpec): Promise<void> {
  const svg = await renderSvg(spec);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, svg.endsWith("\n") ? svg : `${svg}\n`);
}
