/** Prompt adherence of generated images, by the deterministic checker (src/demo/checker.ts). */
import { checkPng, type CheckResult } from './checker.ts';
import type { EvalPrompt } from './prompts.ts';

export interface Adherence {
  images: number;
  /** Fraction whose shape colour is the prompt's. */
  color_adherence: number;
  background_adherence: number;
  shape_adherence: number;
  /** Shape colour and background both right. */
  both_colors_adherence: number;
}

export interface ScoredImage {
  prompt: string;
  expected: { color: string; shape: string; background: string };
  found: { color: string | null; shape: string | null; background: string };
}

export async function scoreImages(
  images: Array<{ png: Buffer; want: EvalPrompt }>,
): Promise<{ summary: Adherence; images: ScoredImage[] }> {
  const scored: ScoredImage[] = [];
  let color = 0;
  let background = 0;
  let shape = 0;
  let both = 0;
  for (const { png, want } of images) {
    const r: CheckResult = await checkPng(png);
    color += +(r.shapeColor === want.color);
    background += +(r.background === want.background);
    shape += +(r.shape === want.shape);
    both += +(r.shapeColor === want.color && r.background === want.background);
    scored.push({
      prompt: want.prompt,
      expected: { color: want.color, shape: want.shape, background: want.background },
      found: { color: r.shapeColor, shape: r.shape, background: r.background },
    });
  }
  const n = Math.max(1, images.length);
  const f = (x: number) => Math.round((x / n) * 1000) / 1000;
  return {
    summary: {
      images: images.length,
      color_adherence: f(color),
      background_adherence: f(background),
      shape_adherence: f(shape),
      both_colors_adherence: f(both),
    },
    images: scored,
  };
}
