/** `muse-data worker --queue URL` and `muse-data queue status|retry-failed|clean --queue URL` (src/queue/). */
import type { Argv } from 'yargs';
import { PROJECT_ROOT, resolveDataRoot } from '../dataset/data-root.ts';
import { UsageError } from './run-cli.ts';
import { QUEUE_NAMES, type QueueName } from '../queue/jobs.ts';

export function workerCommand(y: Argv) {
  return y
    .option('queue', { type: 'string', demandOption: true, describe: 'the Redis of the run: redis://HOST:PORT[/db]' })
    .option('concurrency', {
      type: 'number',
      default: 2,
      describe: 'fetch shards at once in this process (tokenize: one at a time)',
    })
    .option('data-root', {
      type: 'string',
      describe: 'where this machine finds ${data_root} input files (default: $MUSE_DATA_ROOT or ./datasets)',
    })
    .option('kinds', {
      type: 'string',
      default: QUEUE_NAMES.join(','),
      describe: `job kinds to take, comma-separated: ${QUEUE_NAMES.join(', ')}`,
    })
    .option('lock-duration', {
      type: 'number',
      default: 30,
      describe:
        "seconds a job lock lasts without renewal (a dead worker's shard is taken over after this + --stalled-interval)",
    })
    .option('stalled-interval', {
      type: 'number',
      default: 15,
      describe: 'seconds between checks for shards of dead workers',
    });
}

export async function workerHandler(a: Record<string, unknown>): Promise<number> {
  const concurrency = a.concurrency as number;
  if (!Number.isInteger(concurrency) || concurrency < 1)
    throw new UsageError(`--concurrency: expected a positive integer, got ${String(a.concurrency)}`);
  const kinds = String(a.kinds)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const bad = kinds.filter((k) => !(QUEUE_NAMES as readonly string[]).includes(k));
  if (bad.length || !kinds.length)
    throw new UsageError(
      `--kinds: expected one or more of ${QUEUE_NAMES.join(', ')} (comma-separated), got '${String(a.kinds)}'`,
    );
  for (const f of ['lock-duration', 'stalled-interval']) {
    if (!Number.isFinite(a[f]) || (a[f] as number) <= 0)
      throw new UsageError(`--${f}: expected seconds > 0, got ${String(a[f])}`);
  }
  const { runWorker } = await import('../queue/worker.ts');
  await runWorker({
    queueUrl: a.queue as string,
    concurrency,
    dataRoot: resolveDataRoot(a['data-root'] as string | undefined),
    projectRoot: PROJECT_ROOT,
    kinds: kinds as QueueName[],
    timings: {
      lockDurationMs: (a['lock-duration'] as number) * 1000,
      stalledIntervalMs: (a['stalled-interval'] as number) * 1000,
    },
  });
  return 0;
}

export function queueCommand(y: Argv) {
  return y
    .positional('action', { choices: ['status', 'retry-failed', 'clean'] as const, demandOption: true })
    .option('queue', { type: 'string', demandOption: true, describe: 'redis://HOST:PORT[/db]' })
    .option('all', {
      type: 'boolean',
      default: false,
      describe: 'clean: remove every job, waiting ones too (not while jobs are active)',
    })
    .option('json', { type: 'boolean', default: false, describe: 'status: as JSON' });
}

export async function queueHandler(a: Record<string, unknown>): Promise<number> {
  const admin = await import('../queue/admin.ts');
  const url = a.queue as string;
  if (a.action === 'status') {
    const st = await admin.queueStatus(url);
    process.stdout.write(a.json ? JSON.stringify(st, null, 2) + '\n' : admin.formatStatus(url, st));
  } else if (a.action === 'retry-failed') {
    process.stdout.write(`${await admin.retryFailed(url)} failed job(s) back in the queue\n`);
  } else {
    process.stdout.write(`${await admin.cleanQueue(url, a.all as boolean)} job(s) removed\n`);
  }
  return 0;
}
