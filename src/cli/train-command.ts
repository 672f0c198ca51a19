/** `muse-train`: trains a MUSE stage (or the VQGAN) from a config in configs/. */
import path from 'node:path';
import yargs from 'yargs';
import { BACKEND_NAMES, initBackend, listBackends, type BackendName, wasmThreadCount } from '../runtime/backend.ts';
import { STAGES } from '../train/config/schema.ts';
import { loadTrainConfig } from '../train/config/load.ts';
import { runTraining } from '../train/run/run-training.ts';
import { PROJECT_ROOT, resolveDataRoot } from '../dataset/data-root.ts';
import { runCli, UsageError, usageFailure } from './run-cli.ts';
import { assignLocalGpu, openCommunicator } from '../runtime/mpi.ts';
import { assignLocalAdapter } from '../runtime/webgpu.ts';

export async function main(argv: string[]): Promise<number> {
  const a = await yargs(argv)
    .scriptName('muse-train')
    .usage('$0 --stage <stage> [--config FILE] [--set key=value ...] [--out DIR] [--resume latest|DIR [--allow-fresh]]')
    .option('stage', {
      type: 'string',
      choices: STAGES as unknown as string[],
      describe: 'training stage; reads configs/<stage>.yaml (cc12m: cc12m-t5.yaml)',
    })
    .option('config', { type: 'string', describe: 'config file instead of the stage default' })
    .option('set', {
      type: 'string',
      array: true,
      default: [],
      describe: 'override a config key, e.g. --set training.max_steps=100',
    })
    .option('out', { type: 'string', describe: 'run folder (default: experiment.output_dir)' })
    .option('resume', { type: 'string', describe: "continue a run: 'latest' or a checkpoint folder" })
    .option('allow-fresh', {
      type: 'boolean',
      default: false,
      describe: 'with --resume latest: start at step 0 when the run has no checkpoint yet (else refused)',
    })
    .option('backend', {
      type: 'string',
      choices: BACKEND_NAMES as string[],
      default: 'auto',
      describe: 'tfjs backend',
    })
    .option('data-root', {
      type: 'string',
      describe: 'data root for dataset names (default: $MUSE_DATA_ROOT or ./datasets)',
    })
    .option('backends', {
      type: 'boolean',
      default: false,
      describe: "list every tfjs backend, whether it runs here and why, and what 'auto' picks; then exit",
    })
    .check((x) => {
      if (!x.stage && !x.config && !x.backends) throw new UsageError('give --stage or --config');
      return true;
    })
    .strict()
    .help()
    .fail(usageFailure('muse-train'))
    .parseAsync();
  if (a.backends) {
    const { backends, auto } = await listBackends();
    for (const b of backends)
      process.stdout.write(`${b.name.padEnd(10)} ${b.available ? 'available  ' : 'unavailable'}  ${b.detail}\n`);
    process.stdout.write(
      `auto       -> ${auto} (order: native CUDA build, webgpu hardware adapter, native CPU build, wasm, cpu)\n`,
    );
    return 0;
  }
  const stage = a.stage as string | undefined;
  const config = loadTrainConfig({
    stage,
    file: a.config ?? (stage === 'cc12m' ? path.join(PROJECT_ROOT, 'configs', 'cc12m-t5.yaml') : undefined),
    sets: (a.set as string[]).map(String),
    configsDir: path.join(PROJECT_ROOT, 'configs'),
  });
  const runDir = path.resolve(a.out ?? config.experiment.output_dir);
  // Under mpirun / srun: one rank of a data-parallel job (docs/distributed.md); else this process alone.
  const comm = openCommunicator();
  // Several ranks on one machine: each its own GPU (CUDA backends read CUDA_VISIBLE_DEVICES when they load).
  const gpu = assignLocalGpu(comm);
  // webgpu: each rank its own adapter (by name: Dawn's only selector). Under 'auto' a failed choice is a warning, as
  // auto may take another backend; with --backend webgpu it stops the rank.
  let adapter = '';
  if (a.backend === 'webgpu' || (a.backend === 'auto' && comm.localSize > 1)) {
    try {
      adapter = await assignLocalAdapter(comm);
    } catch (err) {
      if (a.backend === 'webgpu') throw err;
      adapter = `no adapter chosen: ${(err as Error).message}`;
      if (comm.rank === 0) process.stderr.write(`muse-train: warning: ${adapter}\n`);
    }
  }
  const backend = await initBackend(a.backend as BackendName, { wasmThreads: wasmThreadCount() });
  const ranks = comm.size > 1 ? `, rank ${comm.rank} of ${comm.size} (local ${comm.localRank})` : '';
  if (comm.rank === 0 || process.env.MUSE_DEBUG)
    process.stderr.write(`muse-train: stage ${config.stage}, run ${runDir}, backend ${backend.name}${ranks}\n`);
  if (process.env.MUSE_DEBUG && comm.size > 1)
    process.stderr.write(`muse-train (rank ${comm.rank}): ${gpu}${adapter ? `; ${adapter}` : ''}\n`);
  try {
    await runTraining({
      config,
      runDir,
      resume: a.resume,
      allowFresh: a['allow-fresh'],
      dataRoot: resolveDataRoot(a['data-root']),
      comm,
    });
  } catch (err) {
    if (comm.size === 1) throw err;
    // The other ranks may wait in a collective for this one: say why, then end the whole job.
    process.stderr.write(`muse-train (rank ${comm.rank} of ${comm.size}): ${(err as Error).message}\n`);
    comm.abort(1);
  }
  comm.finalize();
  return 0;
}

export const cli = (argv?: string[]): Promise<void> => runCli('muse-train', main, argv);
