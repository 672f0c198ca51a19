// Loss curves as PNG: a vega-lite line chart compiled to vega, rendered headless to SVG, rasterised by sharp.
import sharp from 'sharp';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { writeFileAtomic } from '../../util/atomic.ts';

export interface LossCurveOptions {
  title: string;
  /** Field for the x axis (default 'step'). */
  x?: string;
  /** Fields to plot, one line each (e.g. ['loss', 'val_loss']). */
  series: string[];
  logY?: boolean;
  /** EMA smoothing of the plotted line, 0..1 (TensorBoard style); the raw values are drawn faintly behind. */
  smooth?: number;
}

interface Point {
  x: number;
  y: number;
  series: string;
  kind: 'raw' | 'smoothed';
}

/** Points per series; records without a finite numeric x and y (or y <= 0 on a log axis) are skipped for that series. */
function collect(records: Array<Record<string, unknown>>, o: LossCurveOptions, xField: string): Point[] {
  const smooth = o.smooth ?? 0;
  const points: Point[] = [];
  for (const s of o.series) {
    let ema: number | null = null;
    for (const r of records) {
      const x = r[xField];
      const y = r[s];
      if (typeof x !== 'number' || typeof y !== 'number' || !Number.isFinite(x) || !Number.isFinite(y)) continue;
      if (o.logY && y <= 0) continue;
      points.push({ x, y, series: s, kind: 'raw' });
      if (smooth > 0) {
        ema = ema === null ? y : smooth * ema + (1 - smooth) * y;
        points.push({ x, y: ema, series: s, kind: 'smoothed' });
      }
    }
  }
  return points;
}

export function lossCurveSpec(records: Array<Record<string, unknown>>, o: LossCurveOptions): TopLevelSpec {
  const xField = o.x ?? 'step';
  if (o.series.length === 0) throw new Error('renderLossCurve: no series given');
  if (o.smooth !== undefined && !(o.smooth >= 0 && o.smooth < 1))
    throw new Error(`renderLossCurve: smooth must be in [0, 1), got ${o.smooth}`);
  if (records.length === 0) throw new Error(`renderLossCurve '${o.title}': no records to plot`);
  const values = collect(records, o, xField);
  if (values.length === 0) {
    throw new Error(
      `renderLossCurve '${o.title}': none of ${records.length} records has a numeric '${xField}' together with ${o.series.map((s) => `'${s}'`).join(' or ')}`,
    );
  }
  const smoothed = (o.smooth ?? 0) > 0;
  const encoding = {
    x: { field: 'x', type: 'quantitative' as const, title: xField },
    y: {
      field: 'y',
      type: 'quantitative' as const,
      title: o.series.length === 1 ? o.series[0] : 'value',
      scale: o.logY ? { type: 'log' as const } : { zero: false },
    },
    color: { field: 'series', type: 'nominal' as const, title: null },
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: o.title,
    width: 640,
    height: 360,
    background: 'white',
    data: { values },
    layer: [
      {
        transform: [{ filter: "datum.kind === 'raw'" }],
        mark: { type: 'line', opacity: smoothed ? 0.25 : 1, clip: true },
        encoding,
      },
      ...(smoothed
        ? [
            {
              transform: [{ filter: "datum.kind === 'smoothed'" }],
              mark: { type: 'line' as const, clip: true },
              encoding,
            },
          ]
        : []),
    ],
  };
}

/** Renders the chart and writes it atomically to outPng. */
export async function renderLossCurve(
  records: Array<Record<string, unknown>>,
  outPng: string,
  opts: LossCurveOptions,
): Promise<void> {
  const spec = lossCurveSpec(records, opts);
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    const png = await sharp(Buffer.from(svg)).png().toBuffer();
    await writeFileAtomic(outPng, png);
  } finally {
    view.finalize();
  }
}
