// bench/charts.ts: a line chart spec renders headlessly to an SVG document with its title, one
// line per series through every point, and the legend in the order asked for.
import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type LinePoint, lineChartSpec, renderSvg, writeChart } from "./charts.ts";

const SERIES = ["gravity addon", "lru-cache", "Map"];
const X = [1, 2, 4, 8, 16];

function points(): LinePoint[] {
  return SERIES.flatMap((series, s) => X.map((x, i) => ({ series, x, y: (s + 1) * (i + 1) * 0.5 })));
}

/** The `d` attribute of each line mark's path. */
function linePaths(svg: string): string[] {
  return [...svg.matchAll(/<path [^>]*aria-roledescription="line mark"[^>]*\bd="([^"]*)"/g)].map(
    (m) => m[1] as string,
  );
}

test("a line chart renders to SVG with its title and one path per series", async () => {
  const svg = await renderSvg(
    lineChartSpec({
      title: "Throughput — Read (Zipfian)",
      subtitle: "16-byte values",
      xTitle: "concurrency (threads / workers)",
      yTitle: "million ops/s",
      points: points(),
    }),
  );
  expect(svg.startsWith("<svg ")).toBe(true);
  expect(svg.trimEnd().endsWith("</svg>")).toBe(true);
  expect(svg).toContain(">Throughput — Read (Zipfian)</text>");
  expect(svg).toContain(">16-byte values</text>");
  expect(svg).toContain(">million ops/s</text>");
  const paths = linePaths(svg);
  expect(paths.length).toBe(SERIES.length);
  // Each line visits the five x positions: a move then four line segments.
  for (const d of paths) expect(d.match(/[ML]/g)?.length).toBe(X.length);
  // One point mark per measurement.
  expect(svg.match(/aria-roledescription="point"/g)?.length).toBe(SERIES.length * X.length);
});

test("the legend follows seriesOrder", async () => {
  const order = ["Map", "gravity addon", "lru-cache"];
  const svg = await renderSvg(
    lineChartSpec({ title: "t", xTitle: "x", yTitle: "y", points: points(), seriesOrder: order }),
  );
  const labels = [...svg.matchAll(/role-legend-label[^>]*><text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
  expect(labels).toEqual(order);
});

test("writeChart writes the rendered SVG to a file", async () => {
  const dir = mkdtempSync(join(tmpdir(), "gravity-charts-"));
  try {
    const path = join(dir, "nested", "chart.svg");
    const spec = lineChartSpec({ title: "Written", xTitle: "x", yTitle: "y", points: points() });
    await writeChart(path, spec);
    const written = readFileSync(path, "utf8");
    expect(written).toBe(`${await renderSvg(spec)}\n`);
    expect(linePaths(written).length).toBe(SERIES.length);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
