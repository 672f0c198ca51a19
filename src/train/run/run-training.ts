/**
 * Runs a training config: saves the resolved config in the run folder, builds the stage's runner (MUSE
 * transformer or VQGAN) and runs the shared loop. Used by `muse-train`, the demo and the tests.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import YAML from 'yaml';
import type { TrainConfig } from '../config/schema.ts';
import { writeFileAtomic } from '../../util/atomic.ts';
import { resolveDatasetDir } from '../../cli/dedup-command.ts';
import { runTrainingLoop, type StageRunner } from './loop.ts';

export interface TrainRunOptions {
  config: TrainConfig;
  runDir: string;
  resume?: string;
  dataRoot: string;
  stopAfter?: number;
  out?: NodeJS.WriteStream;
}

/** Builds the stage's runner and runs the loop (also used by the demo and tests). */
export async function runTraining(o: TrainRunOptions) {
  const cfg = o.config;
  // Refused before anything is written, so a run's saved config is never replaced by another run's.
  const ckpts = path.join(o.runDir, 'checkpoints');
  if (!o.resume && existsSync(ckpts) && (await readdir(ckpts)).some((n) => n.startsWith('step-'))) {
    throw new Error(`${o.runDir} already has checkpoints: pass --resume latest to continue it, or choose another --out`);
  }
  await mkdir(o.runDir, { recursive: true });
  await saveResolvedConfig(cfg, o.runDir, !!o.resume, o.out ?? process.stderr);
  const paths = Array.isArray(cfg.data.path) ? cfg.data.path : [cfg.data.path];
  const datasetDirs = paths.map((p) => resolveDatasetDir(p, o.dataRoot));
  let runner: StageRunner;
  if (cfg.stage === 'vqgan') {
    const { VqganRunner } = await import('../vqgan/runner.ts');
    runner = await VqganRunner.create({ config: cfg, datasetDirs, runDir: o.runDir });
  } else {
    const { MuseRunner } = await import('../muse/runner.ts');
    const { sampleGridForTraining } = await import('../../sample/for-training.ts');
    runner = await MuseRunner.create({ config: cfg, datasetDirs, runDir: o.runDir, sampleGrid: (dir, png) => sampleGridForTraining(dir, png, cfg.sampling) });
  }
  try {
    return await runTrainingLoop({ config: cfg, runDir: o.runDir, runner, resume: o.resume, stopAfter: o.stopAfter, out: o.out });
  } finally {
    runner.dispose();
  }
}

/** config.yaml in the run folder: the resolved config. On resume, differences from the saved one are listed. */
async function saveResolvedConfig(cfg: TrainConfig, runDir: string, resuming: boolean, out: NodeJS.WriteStream): Promise<void> {
  const file = path.join(runDir, 'config.yaml');
  if (resuming && existsSync(file)) {
    const before = YAML.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    const changed = diffKeys(before, cfg as unknown as Record<string, unknown>, '');
    if (changed.length) out.write(`note: the config differs from the run's saved config in: ${changed.join(', ')}\n`);
  }
  await writeFileAtomic(file, `# resolved by muse-train ${new Date().toISOString()}\n${YAML.stringify(cfg)}`);
}

function diffKeys(a: unknown, b: unknown, prefix: string): string[] {
  if (typeof a === 'object' && a && typeof b === 'object' && b && !Array.isArray(a) && !Array.isArray(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    return [...keys].flatMap((k) => diffKeys((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], prefix ? `${prefix}.${k}` : k));
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [prefix];
}
