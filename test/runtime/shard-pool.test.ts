/** The one shard worker pool (src/runtime/shard-pool.ts) used by fetch and tokenize --workers, with a toy worker. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { runShardPool } from '../../src/runtime/shard-pool.ts';

const workerFile = new URL('../helpers/pool-worker.ts', import.meta.url);
type Done = { type: 'done'; shard: number; value: number; pid: number };

async function run(
  shards: number[],
  opts: { workers?: number; perWorker?: number; stopOnFailure?: boolean; failInit?: boolean } = {},
) {
  const done: Done[] = [];
  const failed: Array<[number, string]> = [];
  let progress = 0;
  let inDone = 0;
  const r = await runShardPool<{ failInit?: boolean }, Done>({
    workerFile,
    workers: opts.workers ?? 2,
    shards,
    init: { failInit: opts.failInit },
    perWorker: opts.perWorker,
    stopOnFailure: opts.stopOnFailure,
    onDone: async (m, seconds) => {
      assert.equal(inDone++, 0, 'onDone calls never overlap');
      assert.ok(seconds >= 0);
      await new Promise((res) => setTimeout(res, 2));
      done.push(m);
      inDone--;
    },
    onFailed: (shard, message) => failed.push([shard, message]),
    onMessage: (m) => {
      if (m.type === 'progress') progress++;
    },
  });
  return { r, done, failed, progress };
}

test('shard pool: every shard done once across the workers, other messages passed on', async () => {
  const { r, done, failed, progress } = await run([0, 1, 2, 4, 6, 7, 8], { perWorker: 2 });
  assert.deepEqual(failed, []);
  assert.deepEqual(r.notStarted, []);
  assert.deepEqual(
    done.map((d) => d.shard).sort((a, b) => a - b),
    [0, 1, 2, 4, 6, 7, 8],
  );
  assert.ok(done.every((d) => d.value === d.shard * 10));
  assert.equal(progress, 7);
});

test('shard pool: a failing shard and a crashed worker are reported; the rest runs unless stopOnFailure', async () => {
  const a = await run([0, 1, 3, 5, 6, 7], { workers: 2 });
  assert.deepEqual(a.failed.map(([s]) => s).sort(), [3, 5]);
  assert.match(a.failed.find(([s]) => s === 3)![1], /^bad shard 3/);
  assert.match(a.failed.find(([s]) => s === 5)![1], /worker exited with code 7 while running it/);
  // the worker that crashed on 5 takes nothing more; the other finishes what is left
  assert.deepEqual([...a.done.map((d) => d.shard), ...a.r.notStarted].sort(), [0, 1, 6, 7]);

  const b = await run([3, 0, 1, 2, 4], { workers: 1, stopOnFailure: true });
  assert.deepEqual(
    b.failed.map(([s]) => s),
    [3],
  );
  assert.deepEqual(b.done, []);
  assert.deepEqual(b.r.notStarted, [0, 1, 2, 4]);
});

test('shard pool: a worker that cannot initialise stops the pool with its message', async () => {
  const { r, done } = await run([0, 1, 2], { failInit: true });
  assert.equal(r.startError, 'cannot load the models');
  assert.deepEqual(r.notStarted, [0, 1, 2]);
  assert.deepEqual(done, []);
});
