/** `muse-data`: the data pipeline's command line. */
import yargs from 'yargs';
import type { Argv } from 'yargs';
import { runCli, usageFailure } from './run-cli.ts';

type Handler = (a: Record<string, unknown>) => Promise<number>;
type Builder = (y: Argv) => Argv;
type Run = (handler: Handler) => (a: Record<string, unknown>) => Promise<void>;

/**
 * Each command's module (and the libraries behind it) is loaded only when that command runs, or for help:
 * start-up CPU is paid by every fetch worker process, so `fetch` must not load dedup's or opt-out's code.
 */
const COMMANDS = {
  fetch: async (run: Run) => {
    const m = await import('./fetch-command.ts');
    return { builder: m.fetchCommand as unknown as Builder, handler: run(m.fetchHandler as Handler) };
  },
  dedup: async (run: Run) => {
    const m = await import('./dedup-command.ts');
    return { builder: m.dedupCommand as unknown as Builder, handler: run(m.dedupHandler) };
  },
  tokenize: async (run: Run) => {
    const m = await import('./tokenize-command.ts');
    return { builder: m.tokenizeCommand as unknown as Builder, handler: run(m.tokenizeHandler) };
  },
  verify: async (run: Run) => {
    const m = await import('./tokenize-command.ts');
    return { builder: m.verifyCommand as unknown as Builder, handler: run(m.verifyHandler) };
  },
  worker: async (run: Run) => {
    const m = await import('./worker-command.ts');
    return { builder: m.workerCommand as unknown as Builder, handler: run(m.workerHandler) };
  },
  queue: async (run: Run) => {
    const m = await import('./worker-command.ts');
    return { builder: m.queueCommand as unknown as Builder, handler: run(m.queueHandler) };
  },
  serve: async (run: Run) => {
    const m = await import('./serve-command.ts');
    return { builder: m.serveCommand as unknown as Builder, handler: run(m.serveHandler) };
  },
  index: async (run: Run) => {
    const m = await import('./index-command.ts');
    return { builder: m.indexCommand as unknown as Builder, handler: run(m.indexHandler) };
  },
  optout: async (run: Run) => {
    const m = await import('./optout-command.ts');
    return { builder: ((y: Argv) => m.optoutCommands(y, run)) as Builder, handler: undefined };
  },
};

export async function main(argv: string[]): Promise<number> {
  let code = 0;
  const run: Run = (handler) => async (a) => {
    code = await handler(a);
  };
  const wanted = argv.find((a) => !a.startsWith('-'));
  const loadAll = wanted === undefined || !(wanted in COMMANDS);
  const load = async (name: keyof typeof COMMANDS) =>
    loadAll || wanted === name ? COMMANDS[name](run) : { builder: ((y: Argv) => y) as Builder, handler: undefined };
  const fetch = await load('fetch');
  const dedup = await load('dedup');
  const optout = await load('optout');
  const tokenize = await load('tokenize');
  const verify = await load('verify');
  const worker = await load('worker');
  const queue = await load('queue');
  const serve = await load('serve');
  const index = await load('index');
  await yargs(argv)
    .scriptName('muse-data')
    .usage('$0 <command> [options]')
    .command(
      'fetch [pipeline]',
      'metadata (parquet/TSV/CSV/JSONL/ImageNet folder) -> WebDataset shards',
      fetch.builder,
      fetch.handler,
    )
    .command(
      'dedup <dataset>',
      'duplicate decisions: same URL, identical image, near-duplicate image',
      dedup.builder,
      dedup.handler,
    )
    .command('optout', 'opt-out index: add|import|remove|list|check|apply', optout.builder)
    .command(
      'tokenize <dataset>',
      'shards -> Arrow token caches (VQ image tokens, text encoder states)',
      tokenize.builder,
      tokenize.handler,
    )
    .command(
      'verify <dataset>',
      'check token caches against their shards and manifests',
      verify.builder,
      verify.handler,
    )
    .command(
      'worker',
      'take fetch and tokenize shard jobs from a Redis queue (--queue URL)',
      worker.builder,
      worker.handler,
    )
    .command('queue <action>', 'a Redis queue of shard jobs: status|retry-failed|clean', queue.builder, queue.handler)
    .command(
      'index <action>',
      "the sample index: compact (merge shard runs into one sorted run; moves an old index.sqlite's samples)",
      index.builder,
      index.handler,
    )
    .command(
      'serve',
      'web pages: opt-out lookup and requests, dataset explorer, model playground (--checkpoint)',
      serve.builder,
      serve.handler,
    )
    .demandCommand(1, 'name a command, e.g. `muse-data fetch sample`')
    .strict()
    .help()
    .fail(usageFailure('muse-data'))
    .parseAsync();
  return code;
}

export const cli = (argv?: string[]): Promise<void> => runCli('muse-data', main, argv);
