/** `muse-train`: trains a MUSE stage (or the VQGAN) from a config in configs/. */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import yargs from 'yargs';
import YAML from 'yaml';
import { BACKEND_NAMES, initBackend, type BackendName } from '../runtime/backend.ts';
import { STAGES, type TrainConfig } from '../train/config/schema.ts';
import { ConfigError, loadTrainConfig } from '../train/config/load.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { PROJECT_ROOT, resolveDataRoot } from './data-root.ts';
import { resolveDatasetDir } from './dedup-command.ts';
import { runTrainingLoop, type StageRunner } from '../train/run/loop.ts';
import { runCli, UsageError } from './run-cli.ts';

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
  await mkdir(o.runDir, { recursive: true });
  await saveResolvedConfig(cfg, o.runDir, !!o.resume, o.out ?? process.stderr);
  const paths = Array.isArray(cfg.data.path) ? cfg.data.path : [cfg.data.path];
  const datasetDirs = paths.map((p) => resolveDatasetDir(p, o.dataRoot));
  let runner: StageRunner;
  if (cfg.stage === 'vqgan') {
    const { VqganRunner } = await import('../train/vqgan/runner.ts');
    runner = await VqganRunner.create({ config: cfg, datasetDirs, runDir: o.runDir });
  } else {
    const { MuseRunner } = await import('../train/muse/runner.ts');
    const { sampleGridForTraining } = await import('../sample/for-training.ts');
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

export async function main(argv: string[]): Promise<number> {
  const a = await yargs(argv)
    .scriptName('muse-train')
    .usage('$0 --stage <stage> [--config FILE] [--set key=value ...] [--out DIR] [--resume latest|DIR]')
    .option('stage', { type: 'string', choices: STAGES as unknown as string[], describe: 'training stage; reads configs/<stage>.yaml (cc12m: cc12m-t5.yaml)' })
    .option('config', { type: 'string', describe: 'config file instead of the stage default' })
    .option('set', { type: 'string', array: true, default: [], describe: 'override a config key, e.g. --set training.max_steps=100' })
    .option('out', { type: 'string', describe: 'run folder (default: experiment.output_dir)' })
    .option('resume', { type: 'string', describe: "continue a run: 'latest' or a checkpoint folder" })
    .option('backend', { type: 'string', choices: BACKEND_NAMES as string[], default: 'auto', describe: 'tfjs backend' })
    .option('data-root', { type: 'string', describe: 'data root for dataset names (default: $MUSE_DATA_ROOT or ./datasets)' })
    .check((x) => {
      if (!x.stage && !x.config) throw new Error('give --stage or --config');
      return true;
    })
    .strict()
    .help()
    .fail((msg, err) => {
      if (err instanceof Error) throw new UsageError(err.message);
      throw new UsageError(`${msg ?? String(err)}\n(see muse-train --help)`);
    })
    .parseAsync();
  const stage = a.stage as string | undefined;
  const config = loadTrainConfig({
    stage,
    file: a.config ?? (stage === 'cc12m' ? path.join(PROJECT_ROOT, 'configs', 'cc12m-t5.yaml') : undefined),
    sets: (a.set as string[]).map(String),
    configsDir: path.join(PROJECT_ROOT, 'configs'),
  });
  const runDir = path.resolve(a.out ?? config.experiment.output_dir);
  const backend = await initBackend(a.backend as BackendName);
  process.stderr.write(`muse-train: stage ${config.stage}, run ${runDir}, backend ${backend.name}\n`);
  const result = await runTraining({ config, runDir, resume: a.resume, dataRoot: resolveDataRoot(a['data-root']) });
  void result;
  return 0;
}

export const cli = (argv?: string[]): Promise<void> => runCli('muse-train', main, argv);

export { ConfigError };
