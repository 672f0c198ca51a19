/** `muse-sample`: MaskGIT decoding from a trained checkpoint to PNGs and a captioned grid. */
import { mkdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import yargs from 'yargs';
import { BACKEND_NAMES, initBackend, type BackendName, wasmThreadCount } from '../runtime/backend.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { GUIDANCE_SCHEDULES, parseTemperature, type GuidanceSchedule } from '../sample/schedules.ts';
import type { SampleOptions, SampleResult } from '../sample/sample.ts';
import { maskSchedule } from '../models/schedules.ts';
import { runCli, UsageError, usageFailure } from './run-cli.ts';

/** File name part of a prompt: lower-case words joined by '-', at most 48 characters. */
export function slug(text: string): string {
  const s = text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 48)
    .replace(/-+$/, '');
  return s || 'image';
}

/** Where the grid, the single images and the per-step images go for `--out`. */
export function outputPaths(out: string): { grid: string; imagesDir: string } {
  if (out.toLowerCase().endsWith('.png')) {
    const dir = path.dirname(out);
    return { grid: out, imagesDir: path.join(dir, path.basename(out, path.extname(out))) };
  }
  return { grid: path.join(out, 'grid.png'), imagesDir: out };
}

export async function writeOutputs(result: SampleResult, out: string): Promise<string[]> {
  const { grid, imagesDir } = outputPaths(out);
  const { makeGrid } = await import('../sample/images.ts');
  await mkdir(imagesDir, { recursive: true });
  const width = String(Math.max(0, result.images.length - 1)).length;
  const written: string[] = [];
  for (const [i, im] of result.images.entries()) {
    const idx = String(i).padStart(width, '0');
    const file = path.join(imagesDir, `${idx}-${slug(im.prompt)}.png`);
    await writeFileAtomic(file, im.png);
    written.push(file);
    if (im.base) {
      const baseFile = path.join(imagesDir, `${idx}-${slug(im.prompt)}-base.png`);
      await writeFileAtomic(baseFile, im.base.png);
      written.push(baseFile);
    }
    for (const [k, png] of (im.intermediate ?? []).entries()) {
      const stepFile = path.join(imagesDir, 'steps', `${idx}-step${k}.png`);
      await writeFileAtomic(stepFile, png);
      written.push(stepFile);
    }
  }
  await writeFileAtomic(grid, await makeGrid(result.images.map((im) => ({ png: im.png, caption: im.prompt }))));
  written.push(grid);
  return written;
}

const list = (v: unknown): string[] => (v === undefined ? [] : Array.isArray(v) ? v.map(String) : [String(v)]);

export async function main(argv: string[]): Promise<number> {
  const a = await yargs(argv)
    .scriptName('muse-sample')
    .usage('$0 --checkpoint DIR --prompt "..." --out DIR|grid.png')
    .option('checkpoint', {
      type: 'string',
      demandOption: true,
      describe: 'checkpoint dir, or a run dir (uses checkpoints/latest)',
    })
    .option('prompt', {
      type: 'string',
      array: true,
      describe: "a prompt (repeatable); default: the checkpoint's sampling prompts",
    })
    .option('prompts', { type: 'string', describe: 'file with one prompt per line' })
    .option('negative-prompt', {
      type: 'string',
      describe: 'unconditional side of guidance instead of the empty caption',
    })
    .option('class', { type: 'number', array: true, describe: 'class id (class-conditional checkpoints; repeatable)' })
    .option('steps', { type: 'number', default: 12 })
    .option('guidance', { type: 'number', describe: 'classifier-free guidance scale (default 4; class models: 1)' })
    .option('guidance-schedule', { choices: GUIDANCE_SCHEDULES as unknown as string[], default: 'constant' })
    .option('temperature', {
      type: 'string',
      default: '1',
      describe: 'Gumbel temperature: t (annealed t -> 0) or start,end',
    })
    .option('schedule', {
      type: 'string',
      default: 'cosine',
      describe: 'mask schedule: cosine, linear, pow<k>, sigmoid',
    })
    .option('seed', { type: 'number', default: 0 })
    .option('num', { type: 'number', default: 1, describe: 'images per prompt' })
    .option('batch', { type: 'number', default: 8, describe: 'images decoded together' })
    .option('ema', { type: 'boolean', default: true, describe: 'use EMA weights when present (--no-ema: raw)' })
    .option('save-intermediate', {
      type: 'boolean',
      default: false,
      describe: 'also write <out>/steps/<i>-step<k>.png (masked tokens grey)',
    })
    .option('superres', {
      type: 'string',
      describe: 'super-res checkpoint or run (stage superres512): base tokens -> its high-res image',
    })
    .option('init-image', { type: 'string', describe: 'inpainting: start image (PNG/JPEG)' })
    .option('mask', { type: 'string', describe: 'inpainting: white = regenerate, black = keep' })
    .option('backend', { choices: BACKEND_NAMES as unknown as string[], default: 'auto' })
    .option('out', {
      type: 'string',
      demandOption: true,
      describe: 'output folder, or grid .png (single images go to a sibling folder)',
    })
    .strict()
    .help()
    .fail(usageFailure('muse-sample'))
    .parseAsync();

  // A flag of one value given twice reaches us as an array (yargs), which would fail later as a TypeError.
  for (const flag of [
    'checkpoint',
    'out',
    'prompts',
    'negative-prompt',
    'superres',
    'init-image',
    'mask',
    'schedule',
    'temperature',
  ] as const) {
    const v: unknown = a[flag];
    if (Array.isArray(v)) throw new UsageError(`--${flag} given ${v.length} times (${v.join(', ')}): give it once`);
  }
  const prompts = list(a.prompt);
  if (a.prompts) {
    const text = await readFile(a.prompts, 'utf8').catch((err: Error) => {
      throw new Error(`--prompts ${a.prompts}: cannot read (${err.message})`);
    });
    prompts.push(
      ...text
        .split(/\r?\n/)
        .map((l) => l.trim())
        .filter(Boolean),
    );
  }
  const intFlag = (name: string, v: number, min: number) => {
    if (!Number.isInteger(v) || v < min) throw new UsageError(`--${name} ${v}: expected an integer >= ${min}`);
    return v;
  };
  let temperature: number | [number, number];
  try {
    temperature = parseTemperature(a.temperature);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (a.guidance !== undefined && !Number.isFinite(a.guidance))
    throw new UsageError(`--guidance ${a.guidance}: expected a number`);
  if ((a['init-image'] === undefined) !== (a.mask === undefined))
    throw new UsageError('--init-image and --mask go together');
  try {
    maskSchedule(a.schedule);
  } catch (err) {
    throw new UsageError(`--schedule: ${(err as Error).message}`);
  }
  // Checked before a model is loaded: the folders named by flags, and an --out that cannot become a folder.
  for (const [flag, dir] of [
    ['checkpoint', a.checkpoint],
    ['superres', a.superres],
  ] as const) {
    if (dir !== undefined && !(await stat(dir).catch(() => undefined))?.isDirectory())
      throw new Error(`--${flag} ${dir}: no such directory`);
  }
  const outDir = outputPaths(a.out).imagesDir;
  if ((await stat(outDir).catch(() => undefined))?.isDirectory() === false) {
    throw new UsageError(`--out ${a.out}: ${outDir} is a file; give a folder, or a grid .png path`);
  }
  const classIds = list(a.class).map(Number);
  const opts: SampleOptions = {
    checkpoint: a.checkpoint,
    prompts,
    classIds,
    negativePrompt: a['negative-prompt'],
    steps: intFlag('steps', a.steps, 1),
    guidance: a.guidance,
    guidanceSchedule: a['guidance-schedule'] as GuidanceSchedule,
    temperature,
    schedule: a.schedule,
    seed: intFlag('seed', a.seed, 0),
    num: intFlag('num', a.num, 1),
    batchSize: intFlag('batch', a.batch, 1),
    ema: a.ema,
    saveIntermediate: a['save-intermediate'],
    superres: a.superres,
  };
  if (a.superres && a['init-image'])
    throw new UsageError('--superres and --init-image do not go together (inpainting is base-model only)');
  if (a['init-image'] && a.mask) {
    const read = (flag: string, f: string) =>
      readFile(f).catch((err: Error) => {
        throw new Error(`--${flag} ${f}: cannot read (${err.message})`);
      });
    opts.init = { image: await read('init-image', a['init-image']), mask: await read('mask', a.mask) };
  }
  await initBackend(a.backend as BackendName, { wasmThreads: wasmThreadCount() });
  const { sample } = await import('../sample/sample.ts');
  const result = await sample(opts);
  const files = await writeOutputs(result, a.out);
  process.stderr.write(
    `muse-sample: ${result.images.length} image(s) from ${result.checkpointDir} (${result.weights} weights) -> ${outputPaths(a.out).grid}` +
      ` (${files.length} files)\n`,
  );
  return 0;
}

export const cli = (argv?: string[]): Promise<void> => runCli('muse-sample', main, argv);
