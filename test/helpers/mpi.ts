// MPI in tests: whether `mpirun` and the addon are here (else the tests are skipped, except in CI), and a runner
// of `mpirun -np N node --import tsx SCRIPT ...` on loopback that collects each rank's output.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { MPI_ADDON_PATH } from '../../src/runtime/mpi.ts';
import { skipUnlessAvailable } from './system-component.ts';

function missing(): string | undefined {
  if (spawnSync('mpirun', ['--version']).status !== 0) return 'mpirun is not installed';
  if (!existsSync(MPI_ADDON_PATH)) return `the MPI addon is not built (${MPI_ADDON_PATH})`;
  return undefined;
}

/** The node:test `skip` value of MPI tests (throws in CI when MPI is missing). */
export const mpiSkip = () => skipUnlessAvailable('mpi', missing(), 'apt-get install openmpi-bin libopenmpi-dev, then npm run build:mpi');

export interface MpiRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Open MPI on one machine, as root too, more ranks than cores; TCP on loopback only, so no network is touched. */
export const MPIRUN_ARGS = ['--allow-run-as-root', '--oversubscribe', '--mca', 'btl', 'self,tcp', '--mca', 'btl_tcp_if_include', 'lo', '--mca', 'oob_tcp_if_include', 'lo'];

/** Runs `args` (after `node --import tsx`) under `mpirun -np n`; `onStart` gets the mpirun child (to kill a rank). */
export function mpirun(n: number, args: string[], o: { env?: NodeJS.ProcessEnv; timeoutMs?: number; onStderr?: (chunk: string) => void } = {}): Promise<MpiRun> {
  const t0 = performance.now();
  const child = spawn('mpirun', [...MPIRUN_ARGS, '-np', String(n), process.execPath, '--import', 'tsx', ...args], {
    env: { ...process.env, ...o.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => {
    stderr += d;
    o.onStderr?.(String(d));
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 120_000);
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}
