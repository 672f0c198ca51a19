/**
 * Processes of one training job: rank, size and local rank, and the collectives data-parallel training needs
 * (sum of a Float32Array in place, min / max / sum of a few float64s, barrier, abort), over MPI through the
 * addon in native/mpi (`npm run build:mpi`). Without a launcher (no mpirun / srun environment) the job is one
 * process and nothing is loaded: installing and running muse without MPI works as before.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The processes of a job and their collectives; every rank must call each collective in the same order. */
export interface Communicator {
  readonly rank: number;
  readonly size: number;
  /** Rank among the processes on this machine (picks the GPU). */
  readonly localRank: number;
  readonly localSize: number;
  /** Element-wise sum over all ranks, in place. */
  allreduceSum(buf: Float32Array): void;
  /** Element-wise sum / min / max over all ranks, in place. */
  allreduceF64(buf: Float64Array, op: 'sum' | 'min' | 'max'): void;
  barrier(): void;
  /** Ends every process of the job with `code` (MPI_Abort); for a rank that cannot go on. */
  abort(code: number): never;
  finalize(): void;
}

interface Addon {
  init(): { rank: number; size: number; localRank: number; localSize: number; threadLevel: number; library: string };
  allreduceSumF32(buf: Float32Array): void;
  allreduceF64(buf: Float64Array, op: number): void;
  barrier(): void;
  finalize(): void;
  abort(code: number): void;
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** Where `npm run build:mpi` leaves the addon. */
export const MPI_ADDON_PATH = path.join(ROOT, 'native', 'mpi', 'build', 'Release', 'muse_mpi.node');

/** This process alone: every collective is the identity. */
export const SINGLE_PROCESS: Communicator = {
  rank: 0,
  size: 1,
  localRank: 0,
  localSize: 1,
  allreduceSum: () => {},
  allreduceF64: () => {},
  barrier: () => {},
  abort: (code) => process.exit(code),
  finalize: () => {},
};

/**
 * The job size a launcher announced in the environment (Open MPI's mpirun, MPICH / Intel MPI's Hydra, SLURM's
 * srun), or 1. Read before MPI is loaded, so a plain `muse-train` never touches MPI.
 */
export function launcherSize(env: NodeJS.ProcessEnv = process.env): { size: number; launcher: string } {
  const vars: Array<[string, string]> = [
    ['OMPI_COMM_WORLD_SIZE', 'mpirun (Open MPI)'],
    ['PMI_SIZE', 'an MPI launcher (PMI)'],
    ['PMIX_SIZE', 'an MPI launcher (PMIx)'],
    ['SLURM_NTASKS', 'srun (SLURM)'],
  ];
  for (const [name, launcher] of vars) {
    const n = Number(env[name]);
    // SLURM_NTASKS is also set inside an sbatch script outside srun: SLURM_PROCID tells a task apart.
    if (name === 'SLURM_NTASKS' && env.SLURM_PROCID === undefined) continue;
    if (Number.isInteger(n) && n > 1) return { size: n, launcher };
  }
  return { size: 1, launcher: '' };
}

/** How to get the addon, for the error when a launcher started several ranks and it is missing. */
export function mpiMissingHelp(launcher: string, size: number, reason: string): string {
  return (
    `${launcher} started ${size} processes, but muse's MPI addon cannot be loaded (${reason}). ` +
    "Install MPI and build the addon: apt-get install openmpi-bin libopenmpi-dev (or load your cluster's MPI module), then " +
    '`npm run build:mpi` in the muse folder (see docs/distributed.md). Without it each process would train alone.'
  );
}

let current: Communicator | null = null;

/**
 * The job's communicator: SINGLE_PROCESS when no launcher started several processes; else MPI, initialised once
 * (the same object on later calls). Throws with how to get the addon when it is missing.
 */
export function openCommunicator(env: NodeJS.ProcessEnv = process.env, addonPath = MPI_ADDON_PATH): Communicator {
  if (current) return current;
  const { size, launcher } = launcherSize(env);
  if (size === 1) return (current = SINGLE_PROCESS);
  if (!existsSync(addonPath)) throw new Error(mpiMissingHelp(launcher, size, `${addonPath} does not exist`));
  let addon: Addon;
  try {
    const mod = { exports: {} as Addon };
    // RTLD_GLOBAL: Open MPI's plug-ins resolve symbols of libmpi, which this addon loads.
    process.dlopen(mod, addonPath, os.constants.dlopen.RTLD_NOW | os.constants.dlopen.RTLD_GLOBAL);
    addon = mod.exports;
  } catch (err) {
    throw new Error(mpiMissingHelp(launcher, size, (err as Error).message));
  }
  const info = addon.init();
  if (info.size !== size) {
    throw new Error(
      `${launcher} announced ${size} processes, MPI reports ${info.size}: is the addon built against the MPI that launched the job?`,
    );
  }
  const ops = { sum: 0, min: 1, max: 2 } as const;
  current = {
    rank: info.rank,
    size: info.size,
    localRank: info.localRank,
    localSize: info.localSize,
    allreduceSum: (buf) => addon.allreduceSumF32(buf),
    allreduceF64: (buf, op) => addon.allreduceF64(buf, ops[op]),
    barrier: () => addon.barrier(),
    abort: (code) => {
      addon.abort(code);
      process.exit(code);
    },
    finalize: () => addon.finalize(),
  };
  return current;
}

/**
 * The same value on every rank, or an error naming `what` and the spread: [v, -v] reduced with max gives the
 * largest and (negated) smallest value in one call. Values must be exact in float64 (integers below 2^53, hashes).
 */
export function assertAgreement(comm: Communicator, what: string, value: number): void {
  if (comm.size === 1) return;
  const buf = Float64Array.of(value, -value);
  comm.allreduceF64(buf, 'max');
  const hi = buf[0];
  const lo = -buf[1];
  if (hi !== lo) {
    throw new Error(
      `the ${comm.size} ranks disagree on ${what} (this is rank ${comm.rank} with ${value}; values range from ${lo} to ${hi})`,
    );
  }
}

/**
 * The GPU of this rank for CUDA backends (tensorflow): with several ranks on a machine, rank k of the machine
 * gets the k-th GPU through CUDA_VISIBLE_DEVICES (the k-th entry when a list is already set; left alone when a
 * single id is set, as SLURM's --gpus-per-task does). Call before the backend loads. Returns what it set, or why not.
 */
export function assignLocalGpu(
  comm: Pick<Communicator, 'localRank' | 'localSize'>,
  env: NodeJS.ProcessEnv = process.env,
): string {
  if (comm.localSize <= 1) return 'one rank on this machine: CUDA_VISIBLE_DEVICES left as it is';
  const set = env.CUDA_VISIBLE_DEVICES?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (set && set.length === 1) return `CUDA_VISIBLE_DEVICES=${set[0]} was set for this rank: left as it is`;
  if (set && set.length < comm.localSize) {
    throw new Error(
      `CUDA_VISIBLE_DEVICES lists ${set.length} GPUs (${set.join(',')}) for the ${comm.localSize} ranks on this machine: ` +
        'start at most one rank per GPU, or list one GPU per rank',
    );
  }
  env.CUDA_VISIBLE_DEVICES = set ? set[comm.localRank] : String(comm.localRank);
  return `local rank ${comm.localRank} of ${comm.localSize}: CUDA_VISIBLE_DEVICES=${env.CUDA_VISIBLE_DEVICES}`;
}
