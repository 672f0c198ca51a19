/**
 * The demo's evaluation prompts, from the sample catalog: held-out (colour, shape) pairs that no training
 * caption contains, and pairs the model was trained on. Each prompt keeps the colours the checker will look for.
 */
import {
  COLOR_NAMES,
  SHAPE_NAMES,
  HELD_OUT_COMBINATIONS,
  isHeldOut,
  sampleCaption,
  sampleCatalog,
  type ColorName,
  type ShapeName,
} from '../sample-data/catalog.ts';

export interface EvalPrompt {
  prompt: string;
  color: ColorName;
  shape: ShapeName;
  background: ColorName;
}

/** The (colour, shape, background) of a caption of the sample's one template; null for any other text. */
export function parseSampleCaption(caption: string): EvalPrompt | null {
  const m = /^a (\w+) (\w+) on a (\w+) background$/.exec(caption);
  if (!m) return null;
  const [, color, shape, background] = m;
  const isColor = (c: string): c is ColorName => (COLOR_NAMES as readonly string[]).includes(c);
  if (!isColor(color) || !isColor(background) || !(SHAPE_NAMES as readonly string[]).includes(shape)) return null;
  return make(color, shape as ShapeName, background);
}

const make = (color: ColorName, shape: ShapeName, background: ColorName): EvalPrompt => ({
  prompt: sampleCaption(color, shape, background),
  color,
  shape,
  background,
});

/** Every held-out pair on `perPair` backgrounds (spread over the palette, never the shape's own colour). */
export function heldOutPrompts(perPair: number): EvalPrompt[] {
  const out: EvalPrompt[] = [];
  HELD_OUT_COMBINATIONS.forEach(({ color, shape }, i) => {
    const backgrounds = COLOR_NAMES.filter((c) => c !== color);
    for (let k = 0; k < Math.min(perPair, backgrounds.length); k++)
      out.push(make(color, shape, backgrounds[(i * 3 + k) % backgrounds.length]));
  });
  return out;
}

/** `count` distinct captions of ok rows the model trained on (rows of `trainRows`), spread through the catalog. */
export function trainingPrompts(count: number, trainRows: (row: number) => boolean): EvalPrompt[] {
  const seen = new Map<string, EvalPrompt>();
  for (const item of sampleCatalog()) {
    if (item.kind !== 'ok' || !trainRows(item.row) || isHeldOut(item.color, item.shape)) continue;
    const p = make(item.color, item.shape, item.background);
    if (!seen.has(p.prompt)) seen.set(p.prompt, p);
  }
  const all = [...seen.values()];
  const step = Math.max(1, Math.floor(all.length / count));
  return all.filter((_, i) => i % step === 0).slice(0, count);
}
