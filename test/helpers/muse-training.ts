/**
 * The MUSE training loop in this process, as `muse-train` runs it (config from configs/ plus `--set`s, the
 * runner, the loop), quiet; and the losses a run logged. Shared by the training tests of every variant.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { loadTrainConfig } from '../../src/train/config/load.ts';
import { MuseRunner } from '../../src/train/muse/runner.ts';
import { runTrainingLoop } from '../../src/train/run/loop.ts';
import { readJsonl } from '../../src/train/core/index.ts';

const configsDir = path.resolve(import.meta.dirname, '../../configs');

export const quiet = { write: () => true } as unknown as NodeJS.WriteStream;

export interface TrainOptions {
  stage?: string;
  resume?: string;
  allowFresh?: boolean;
  stopAfter?: number;
  out?: NodeJS.WriteStream;
}

/** Trains on the dataset `dir` into `runDir` with `sets` (`data.path` is set to `dir`). */
export async function trainMuse(dir: string, runDir: string, sets: string[], o: TrainOptions = {}) {
  const config = loadTrainConfig({ stage: o.stage ?? 'tiny', configsDir, sets: [`data.path=${dir}`, ...sets] });
  const runner = await MuseRunner.create({ config, datasetDirs: [dir], runDir });
  try {
    return await runTrainingLoop({
      config,
      runDir,
      runner,
      resume: o.resume,
      allowFresh: o.allowFresh,
      stopAfter: o.stopAfter,
      out: o.out ?? quiet,
    });
  } finally {
    runner.dispose();
  }
}

/** [step, loss] of every training step in the run's log.jsonl. */
export async function losses(runDir: string): Promise<Array<[number, number]>> {
  return (await readJsonl(path.join(runDir, 'log.jsonl')))
    .filter((r) => 'loss' in r)
    .map((r) => [r.step as number, r.loss as number]);
}

export const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;

/**
 * Samples two prompts from the run's checkpoint twice with one seed (4 steps, guidance 3) and asserts the images
 * are 4x4 tokens and byte-identical; returns the first result.
 */
export async function sampleTwiceAlike(checkpoint: string) {
  const { sample } = await import('../../src/sample/sample.ts');
  const opts = { checkpoint, prompts: ['a red circle', 'a blue star'], steps: 4, guidance: 3, seed: 1 };
  const a = await sample(opts);
  const b = await sample(opts);
  assert.equal(a.images.length, 2);
  for (const [i, im] of a.images.entries()) {
    assert.equal(im.ids.length, 16);
    assert.ok(im.png.equals(b.images[i].png), 'same seed, same image');
  }
  return a;
}
