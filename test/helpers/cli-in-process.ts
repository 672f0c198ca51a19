/**
 * Runs a command line in this process (no child start-up): the command's `cli(argv)` with stderr and stdout
 * captured, and the exit code it set. The same code path as the installed bin after argument parsing.
 */
export interface CliResult {
  status: number;
  stderr: string;
  stdout: string;
}

type Cli = (argv?: string[]) => Promise<void>;

const ENTRIES: Record<string, () => Promise<{ cli: Cli }>> = {
  'muse-data': () => import('../../src/cli/muse-data.ts'),
  'muse-train': () => import('../../src/cli/train-command.ts'),
  'muse-sample': () => import('../../src/cli/sample-command.ts'),
  'muse-eval': () => import('../../src/cli/eval-command.ts'),
};

/** Runs one command at a time (it swaps process.stderr/stdout writes and process.exitCode while it runs). */
export async function runInProcess(command: keyof typeof ENTRIES, argv: string[]): Promise<CliResult> {
  const { cli } = await ENTRIES[command]();
  const err: string[] = [];
  const out: string[] = [];
  const origErr = process.stderr.write.bind(process.stderr);
  const origOut = process.stdout.write.bind(process.stdout);
  const savedCode = process.exitCode;
  process.exitCode = undefined;
  process.stderr.write = ((chunk: string | Uint8Array) => (
    err.push(String(chunk)),
    true
  )) as typeof process.stderr.write;
  process.stdout.write = ((chunk: string | Uint8Array) => (
    out.push(String(chunk)),
    true
  )) as typeof process.stdout.write;
  let status: number;
  try {
    await cli(argv);
    status = Number(process.exitCode ?? 0);
  } finally {
    process.stderr.write = origErr;
    process.stdout.write = origOut;
    process.exitCode = savedCode;
  }
  return { status, stderr: err.join(''), stdout: out.join('') };
}
