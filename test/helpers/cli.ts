/**
 * Runs an installed command (`bin/<name>.js`) in a child process, as a user's shell would: exit code or signal,
 * stdout and stderr collected. For what a process boundary shows (exit codes set by Node, kill -9, two
 * processes at once, a worker pool); a plain bad-input row runs faster in this process (cli-in-process.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

export const PROJECT_ROOT = path.resolve(import.meta.dirname, '../..');

export type Command = 'muse-data' | 'muse-train' | 'muse-sample' | 'muse-eval' | 'build-tensorflow';

export interface CliRun {
  /** The exit code; null when a signal ended the process. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time from start to exit. */
  ms: number;
}

export interface CliOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Called with all of stderr so far after each chunk; `kill()` sends SIGKILL. */
  onStderr?: (text: string, kill: () => void) => void;
  /** SIGKILL after this long (a hung command fails its test instead of the whole run). */
  timeoutMs?: number;
}

/** The running command: await it for its outcome; `kill` sends a signal (default SIGKILL). */
export interface RunningCli extends Promise<CliRun> {
  child: ChildProcess;
  kill(signal?: NodeJS.Signals): void;
}

export function runCli(command: Command, args: string[], opts: CliOptions = {}): RunningCli {
  const started = Date.now();
  const child = spawn(process.execPath, [path.join(PROJECT_ROOT, 'bin', `${command}.js`), ...args], {
    cwd: opts.cwd,
    env: opts.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const kill = (signal: NodeJS.Signals = 'SIGKILL') => void child.kill(signal);
  child.stdout!.on('data', (c: Buffer) => (stdout += c));
  child.stderr!.on('data', (c: Buffer) => {
    stderr += c;
    opts.onStderr?.(stderr, () => kill());
  });
  const timer = opts.timeoutMs === undefined ? undefined : setTimeout(() => kill(), opts.timeoutMs);
  const done = new Promise<CliRun>((resolve, reject) => {
    child.on('error', reject);
    // 'close': the process has exited and its output streams are read to the end.
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
  return Object.assign(done, { child, kill });
}
