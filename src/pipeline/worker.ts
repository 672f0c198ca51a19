/**
 * A fetch worker process (`--workers N` starts N of them). It receives shard numbers from the parent over IPC,
 * runs them and reports rows and finished shards. It exits when the parent goes away, so a killed run leaves
 * no orphan writing into the output folder.
 */
import { createShardContext, type ContextOptions } from './context.ts';
import { runShard } from './shard-job.ts';
import type { SampleStatus } from '../shards/outcome.ts';
import type { ShardStats } from '../dataset/stats.ts';
import type { LiveStatus } from './progress.ts';

export type ToWorker = { type: 'init'; options: ContextOptions } | { type: 'shard'; shard: number } | { type: 'stop' };
export type FromWorker =
  | { type: 'hello' }
  | { type: 'ready' }
  | { type: 'rows'; counts: Partial<Record<SampleStatus, number>> }
  | { type: 'live'; pid: number; status: LiveStatus }
  | { type: 'done'; shard: number; stats: ShardStats; /** this process's peak RSS so far, KiB */ max_rss_kb: number }
  | { type: 'error'; shard: number | null; message: string };

const send = (m: FromWorker) => process.send!(m);

if (process.send) {
  process.on('disconnect', () => process.exit(1));
  let ctx: Awaited<ReturnType<typeof createShardContext>> | undefined;
  let counts: Partial<Record<SampleStatus, number>> = {};
  const flush = () => {
    if (Object.keys(counts).length) send({ type: 'rows', counts });
    counts = {};
  };
  const sendLive = () => ctx && send({ type: 'live', pid: process.pid, status: ctx.live() });
  const timer = setInterval(flush, 200);
  const liveTimer = setInterval(sendLive, 1000);
  process.on('message', async (m: ToWorker) => {
    try {
      if (m.type === 'init') {
        ctx = await createShardContext(m.options);
        ctx.onRow = (status) => {
          counts[status] = (counts[status] ?? 0) + 1;
        };
        send({ type: 'ready' });
      } else if (m.type === 'shard') {
        const stats = await runShard(m.shard, ctx!);
        flush();
        sendLive(); // before 'done': the parent's summary lists the origins cut off
        send({ type: 'done', shard: m.shard, stats, max_rss_kb: process.resourceUsage().maxRSS });
      } else {
        clearInterval(timer);
        clearInterval(liveTimer);
        flush();
        await ctx?.close();
        // Explicit exit: pooled sockets or library threads must not keep a finished worker alive.
        process.exit(0);
      }
    } catch (err) {
      send({ type: 'error', shard: m.type === 'shard' ? m.shard : null, message: (err as Error).stack ?? String(err) });
    }
  });
  // Only now is the listener attached: the parent waits for this before sending work.
  send({ type: 'hello' });
}
