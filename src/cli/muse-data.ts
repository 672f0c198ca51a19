/** `muse-data`: the data pipeline's command line. */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { fetchCommand, fetchHandler } from './fetch-command.ts';
import { dedupCommand, dedupHandler } from './dedup-command.ts';
import { optoutCommands } from './optout-command.ts';

/** Wrong flags or values: exit code 2, like yargs' own usage errors. */
class UsageError extends Error {}

const notYet = (what: string, issue: number) => async () => {
  process.stderr.write(`muse-data ${what}: not available yet (tracked in issue ${issue})\n`);
  return 2;
};

export async function main(argv: string[]): Promise<number> {
  let code = 0;
  const run = (handler: (a: Record<string, unknown>) => Promise<number>) => async (a: Record<string, unknown>) => {
    code = await handler(a);
  };
  await yargs(argv)
    .scriptName('muse-data')
    .usage('$0 <command> [options]')
    .command('fetch [pipeline]', 'metadata (parquet/TSV/CSV/JSONL/ImageNet folder) -> WebDataset shards', fetchCommand, run(fetchHandler as (a: Record<string, unknown>) => Promise<number>))
    .command('dedup <dataset>', 'duplicate decisions: same URL, identical image, near-duplicate image', dedupCommand, run(dedupHandler))
    .command('optout', 'opt-out index: add|import|remove|list|check|apply', (y) => optoutCommands(y, run))
    .command('tokenize <dataset>', 'shards -> Arrow token caches', (y) => y, run(notYet('tokenize', 5)))
    .command('verify <dataset>', 'check caches against shards', (y) => y, run(notYet('verify', 5)))
    .demandCommand(1, 'name a command, e.g. `muse-data fetch sample`')
    .strict()
    .help()
    .fail((msg, err) => {
      // yargs passes its own validation failures as a message (some versions as `err` being a string).
      if (err instanceof Error) throw err;
      throw new UsageError(`${msg ?? String(err)}\n(see muse-data --help)`);
    })
    .parseAsync();
  return code;
}

export async function cli(argv = hideBin(process.argv)): Promise<void> {
  try {
    process.exitCode = await main(argv);
  } catch (err) {
    // Errors about the user's input (plain Error and the project's own classes) are shown as their message;
    // a TypeError, RangeError ... is a bug in muse and keeps its stack. MUSE_DEBUG=1 always shows stacks.
    const e = err as Error;
    const bug = e instanceof TypeError || e instanceof RangeError || e instanceof ReferenceError || e instanceof SyntaxError;
    process.stderr.write(`muse-data: ${bug || process.env.MUSE_DEBUG ? (e.stack ?? String(e)) : e.message}\n`);
    process.exitCode = err instanceof UsageError ? 2 : 1;
  }
}
