/**
 * Runs a training config: builds the stage's runner (MUSE transformer or VQGAN) and runs the shared loop.
 * Used by `muse-train`, the demo and the tests.
 */
import type { TrainConfig } from '../config/schema.ts';
import { resolveDatasetDir } from '../../dataset/data-root.ts';
import { assertResumable, runTrainingLoop, type StageRunner } from './loop.ts';
import type { Communicator } from '../../runtime/mpi.ts';

export interface TrainRunOptions {
  config: TrainConfig;
  runDir: string;
  resume?: string;
  /** With resume 'latest': start fresh when the run has no checkpoint (else refused). */
  allowFresh?: boolean;
  dataRoot: string;
  stopAfter?: number;
  out?: NodeJS.WriteStream;
  /** Data-parallel ranks (default: this process alone). */
  comm?: Communicator;
  /** Ranks compare weight checksums every this many steps (and at each save). */
  weightCheckEvery?: number;
}

export async function runTraining(o: TrainRunOptions) {
  const cfg = o.config;
  await assertResumable(o.runDir, o.resume, o.allowFresh ?? false, cfg.training.keep_last);
  const paths = Array.isArray(cfg.data.path) ? cfg.data.path : [cfg.data.path];
  const datasetDirs = paths.map((p) => resolveDatasetDir(p, o.dataRoot));
  let runner: StageRunner;
  if (cfg.stage === 'vqgan') {
    const { VqganRunner } = await import('../vqgan/runner.ts');
    runner = await VqganRunner.create({
      config: cfg,
      datasetDirs,
      runDir: o.runDir,
      dataRoot: o.dataRoot,
      comm: o.comm,
    });
  } else {
    const { MuseRunner } = await import('../muse/runner.ts');
    const { sampleGridForTraining } = await import('../../sample/for-training.ts');
    runner = await MuseRunner.create({
      config: cfg,
      datasetDirs,
      runDir: o.runDir,
      dataRoot: o.dataRoot,
      comm: o.comm,
      sampleGrid: (dir, png) => sampleGridForTraining(dir, png, cfg.sampling),
    });
  }
  const evaluator =
    cfg.stage !== 'vqgan' && cfg.evaluation.every
      ? (await import('./evaluation.ts')).trainingEvaluator(
          cfg,
          o.runDir,
          (m) => (o.out ?? process.stderr).write(`${m}\n`),
          o.dataRoot,
        )
      : undefined;
  try {
    return await runTrainingLoop({
      config: cfg,
      runDir: o.runDir,
      runner,
      resume: o.resume,
      allowFresh: o.allowFresh,
      stopAfter: o.stopAfter,
      out: o.out,
      evaluator,
      comm: o.comm,
      weightCheckEvery: o.weightCheckEvery,
    });
  } finally {
    runner.dispose();
  }
}
