/**
 * `sampling.json`, the file a MUSE checkpoint carries for the sampler: which VQGAN decodes its tokens, which text
 * encoder conditions it, the token grid and the default prompts. The trainer writes it (src/train/muse/runner.ts),
 * every loader reads it through readSamplingInfo.
 *
 * Paths in it are relative to the checkpoint folder (the trainer copies the VQGAN and the text encoders in), so a
 * moved or copied run still samples. Checkpoints written before that hold absolute paths, which still load.
 */
import path from 'node:path';
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../util/atomic.ts';
import { CHECKPOINT_FILES } from './names.ts';

export interface SamplingInfo {
  /** 'builtin', or the VQGAN folder (relative to the checkpoint). */
  vq: string;
  /** Text encoder spec ('byt5-tiny', 't5:DIR', 'clip:DIR', two comma-separated), folders relative to the checkpoint; null: class-conditional. */
  text_encoder: string | null;
  text_max_length: number | null;
  class_conditional: boolean;
  resolution: number;
  grid: [number, number];
  prompts: string[];
  /** Super-res checkpoints: the base VQGAN whose tokens they take, and its token grid. */
  lowres_vq?: string;
  lowres_grid?: [number, number];
}

/** A path sampling.json holds, made absolute: relative ones are resolved against the checkpoint folder. */
export function resolveInCheckpoint(dir: string, p: string): string {
  return path.resolve(dir, p);
}

export async function writeSamplingInfo(dir: string, info: SamplingInfo): Promise<void> {
  await writeFileAtomic(path.join(dir, CHECKPOINT_FILES.sampling), JSON.stringify(info, null, 2) + '\n');
}

/** Reads and checks `dir`/sampling.json (paths returned as written: resolve them with resolveInCheckpoint). */
export async function readSamplingInfo(dir: string): Promise<SamplingInfo> {
  const file = path.join(dir, CHECKPOINT_FILES.sampling);
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: cannot read (${(err as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${file}: not a JSON object`);
  const j = raw as Record<string, unknown>;
  const bad = (key: string, what: string) =>
    new Error(`${file}: "${key}" must be ${what}, got ${JSON.stringify(j[key])}`);
  if (typeof j.vq !== 'string' || !j.vq) throw bad('vq', '"builtin" or a VQGAN folder (relative to the checkpoint)');
  if (j.text_encoder !== null && typeof j.text_encoder !== 'string')
    throw bad('text_encoder', 'a text encoder spec or null');
  const tml = j.text_max_length ?? null;
  if (tml !== null && !(Number.isInteger(tml) && (tml as number) > 0))
    throw bad('text_max_length', 'a positive integer or null');
  if (typeof j.class_conditional !== 'boolean') throw bad('class_conditional', 'true or false');
  if (!Number.isInteger(j.resolution) || (j.resolution as number) < 1) throw bad('resolution', 'a positive integer');
  const grid = j.grid as unknown[];
  if (!Array.isArray(grid) || grid.length !== 2 || !grid.every((v) => Number.isInteger(v) && (v as number) > 0))
    throw bad('grid', '[h, w] of positive integers');
  const prompts = j.prompts ?? [];
  if (!Array.isArray(prompts) || !prompts.every((s) => typeof s === 'string'))
    throw bad('prompts', 'a list of strings');
  if (!j.class_conditional && j.text_encoder === null)
    throw new Error(`${file}: a text model needs "text_encoder" (it is null and class_conditional is false)`);
  return {
    vq: j.vq,
    text_encoder: j.text_encoder as string | null,
    text_max_length: tml as number | null,
    class_conditional: j.class_conditional,
    resolution: j.resolution as number,
    grid: [grid[0] as number, grid[1] as number],
    prompts: prompts as string[],
    ...(typeof j.lowres_vq === 'string' && Array.isArray(j.lowres_grid)
      ? {
          lowres_vq: j.lowres_vq,
          lowres_grid: [Number(j.lowres_grid[0]), Number(j.lowres_grid[1])] as [number, number],
        }
      : {}),
  };
}
