/** What every muse command line does with its outcome: exit code, and errors shown as messages or stacks. */
import { hideBin } from 'yargs/helpers';
import { BackendUnavailableError } from '../runtime/errors.ts';

/** Wrong flags or values: exit code 2, like yargs' own usage errors. */
export class UsageError extends Error {}

/**
 * Runs `main` and sets the exit code. Errors about the user's input (plain Error and the project's own classes)
 * are shown as their message; a TypeError, RangeError ... is a bug in muse and keeps its stack. MUSE_DEBUG=1
 * always shows stacks.
 */
export async function runCli(
  name: string,
  main: (argv: string[]) => Promise<number>,
  argv = hideBin(process.argv),
): Promise<void> {
  try {
    process.exitCode = await main(argv);
  } catch (err) {
    const e = err as Error;
    const bug =
      e instanceof TypeError || e instanceof RangeError || e instanceof ReferenceError || e instanceof SyntaxError;
    process.stderr.write(`${name}: ${bug || process.env.MUSE_DEBUG ? (e.stack ?? String(e)) : e.message}\n`);
    // A --backend that cannot run here is bad input too: exit 2 (checked before anything is written).
    process.exitCode = err instanceof UsageError || err instanceof BackendUnavailableError ? 2 : 1;
  }
}

/**
 * yargs `.fail()` handler: yargs' own validation failures (a message; some versions pass a string as `err`) become
 * UsageErrors pointing at --help; errors thrown by our code (including UsageErrors from `.check()`) pass unchanged.
 */
export function usageFailure(name: string): (msg: string | undefined, err: unknown) => never {
  return (msg, err) => {
    if (err instanceof Error) throw err;
    throw new UsageError(`${msg ?? String(err)}\n(see ${name} --help)`);
  };
}
