// bench/charts.ts: a line chart spec renders headlessly to an SVG document with its title, one
// line per series through every point, and the legend in the order asked for; a log y scale puts
// decades at even steps; a bar chart draws one bar per value and a whisker per range given.
import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Bar, barChartSpec, type LinePoint, lineChartSpec, renderSvg, writeChart } from "./charts.ts";

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

/** The y position of each y-axis tick label (labels drawn right-aligned left of the plot), by text. */
function yLabelPositions(svg: string): Map<string, number> {
  const positions = new Map<string, number>();
  for (const m of svg.matchAll(
    /<text text-anchor="end" transform="translate\(-?[\d.]+,([\d.]+)\)"[^>]*>([^<]*)<\/text>/g,
  ))
    positions.set(m[2] as string, Number(m[1]));
  return positions;
}

test("yScale log puts each decade the same distance apart", async () => {
  const logPoints: LinePoint[] = [
    { series: "off", x: 50, y: 0.3 },
    { series: "off", x: 99, y: 50 },
    { series: "on", x: 50, y: 0.3 },
    { series: "on", x: 99, y: 3 },
  ];
  const spec = lineChartSpec({
    title: "t",
    xTitle: "percentile",
    yTitle: "ms",
    points: logPoints,
    yScale: "log",
  });
  const svg = await renderSvg(spec);
  const y = yLabelPositions(svg);
  const [one, ten, hundred] = [y.get("1"), y.get("10"), y.get("100")];
  expect(one).toBeDefined();
  expect(ten).toBeDefined();
  expect(hundred).toBeDefined();
  expect((one as number) - (ten as number)).toBeCloseTo((ten as number) - (hundred as number), 3);
  expect(linePaths(svg).length).toBe(2);
});

test("a bar chart draws a bar per value, whiskers where a range is given, legend and groups in order", async () => {
  const bars: Bar[] = [
    { category: "gets", series: "twemproxy", value: 50_000, low: 48_000, high: 52_000 },
    { category: "gets", series: "gravity router", value: 45_000, low: 44_000, high: 47_000 },
    { category: "sets", series: "twemproxy", value: 5_000 },
    { category: "sets", series: "gravity router", value: 4_500 },
  ];
  const svg = await renderSvg(
    barChartSpec({
      title: "Proxy throughput",
      subtitle: "memcaslap",
      xTitle: "operation",
      yTitle: "TPS",
      bars,
      seriesOrder: ["twemproxy", "gravity router"],
      categoryOrder: ["sets", "gets"],
    }),
  );
  expect(svg).toContain(">Proxy throughput</text>");
  expect(svg).toContain(">memcaslap</text>");
  expect(svg.match(/aria-roledescription="bar"/g)?.length).toBe(bars.length);
  expect(svg.match(/aria-roledescription="rule mark"/g)?.length).toBe(2);
  const labels = [...svg.matchAll(/role-legend-label[^>]*><text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
  expect(labels).toEqual(["twemproxy", "gravity router"]);
  const sets = svg.indexOf(">sets</text>");
  const gets = svg.indexOf(">gets</text>");
  expect(sets).toBeGreaterThan(0);
  expect(gets).toBeGreaterThan(sets);
});

test("labelAngle slants the category labels of a bar chart", async () => {
  const bars: Bar[] = [
    { category: "zipf-0.99 1%", series: "lru", value: 40 },
    { category: "zipf-0.99 1%", series: "tinylfu", value: 50 },
  ];
  const level = await renderSvg(barChartSpec({ title: "t", xTitle: "x", yTitle: "y", bars }));
  const slanted = await renderSvg(
    barChartSpec({ title: "t", xTitle: "x", yTitle: "y", bars, labelAngle: -30 }),
  );
  const rotated = (svg: string) =>
    /<text[^>]*transform="[^"]*rotate\(330\)[^"]*"[^>]*>zipf-0\.99 1%<\/text>/.test(svg);
  expect(rotated(slanted)).toBe(true);
  expect(rotated(level)).toBe(false);
});
