/**
 * The MUSE training loop in this process, as `muse-train` runs it (config from configs/ plus `--set`s, the
 * runner, the loop), quiet; and the losses a run logged. Shared by the training tests of every variant.
 */
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
