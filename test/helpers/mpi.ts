// MPI in tests: whether `mpirun` and the addon are here (else the tests are skipped, except in CI), and a runner
// of `mpirun -np N node --import tsx SCRIPT ...` on loopback that collects each rank's output.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { MPI_ADDON_PATH } from '../../src/runtime/mpi.ts';
import { skipUnlessAvailable } from './system-component.ts';

function missing(): string | undefined {
  if (spawnSync('mpirun', ['--version']).status !== 0) return 'mpirun is not installed';
  if (!existsSync(MPI_ADDON_PATH)) return `the MPI addon is not built (${MPI_ADDON_PATH})`;
  return undefined;
}

/** The node:test `skip` value of MPI tests (throws in CI when MPI is missing). */
export const mpiSkip = () =>
  skipUnlessAvailable('mpi', missing(), 'apt-get install openmpi-bin libopenmpi-dev, then npm run build:mpi');

export interface MpiRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Open MPI on one machine, as root too, more ranks than cores; TCP (when used) on loopback only. */
export const MPIRUN_LOCAL = [
  '--allow-run-as-root',
  '--oversubscribe',
  '--mca',
  'btl_tcp_if_include',
  'lo',
  '--mca',
  'oob_tcp_if_include',
  'lo',
];
/** The tests' transport: TCP on loopback, so no network is touched. */
export const MPIRUN_ARGS = [...MPIRUN_LOCAL, '--mca', 'btl', 'self,tcp'];

export interface MpirunOptions {
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** Gets the mpirun process once started (its children are the ranks). */
  onStart?: (pid: number) => void;
}

/** Runs `args` (after `node --import tsx`) under `mpirun -np n`. */
export function mpirun(n: number, args: string[], o: MpirunOptions = {}): Promise<MpiRun> {
  return mpirunEach(
    Array.from({ length: n }, () => args),
    o,
  );
}

/** One rank per entry, each with its own arguments (mpirun's `-np 1 A : -np 1 B` form). */
export function mpirunEach(ranks: string[][], o: MpirunOptions = {}): Promise<MpiRun> {
  const apps = ranks.flatMap((args, i) => [
    ...(i ? [':'] : []),
    '-np',
    '1',
    process.execPath,
    '--import',
    'tsx',
    ...args,
  ]);
  const t0 = performance.now();
  const child = spawn('mpirun', [...MPIRUN_ARGS, ...apps], {
    env: { ...process.env, ...o.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  if (child.pid) o.onStart?.(child.pid);
  const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 120_000);
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

/** The pid of rank `rank` among the children of an mpirun process (Linux /proc; Open MPI sets OMPI_COMM_WORLD_RANK). */
export function rankPid(mpirunPid: number, rank: number): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after the last ')'
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) !== mpirunPid) continue;
      const env = readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
      if (env.includes(`OMPI_COMM_WORLD_RANK=${rank}`)) return Number(entry);
    } catch {
      // the process ended meanwhile
    }
  }
  return undefined;
}
