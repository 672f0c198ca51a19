/**
 * A shard worker for the pool tests (test/runtime/shard-pool.test.ts), speaking the protocol of src/runtime/shard-pool.ts:
 * shard 3 fails with an error, shard 5 kills its process, init with failInit fails; others report shard * 10.
 */
type Init = { failInit?: boolean; delayMs?: number };

if (process.send) {
  const send = (m: unknown) => process.send!(m);
  let init: Init = {};
  process.on('disconnect', () => process.exit(1));
  process.on('message', async (m: { type: string; options?: Init; shard?: number }) => {
    if (m.type === 'init') {
      if (m.options?.failInit) return send({ type: 'error', shard: null, message: 'cannot load the models' });
      init = m.options ?? {};
      send({ type: 'ready' });
    } else if (m.type === 'shard') {
      const shard = m.shard!;
      await new Promise((r) => setTimeout(r, init.delayMs ?? 5));
      if (shard === 3) return send({ type: 'error', shard, message: 'bad shard 3\nstack line' });
      if (shard === 5) process.exit(7);
      send({ type: 'progress', shard });
      send({ type: 'done', shard, value: shard * 10, pid: process.pid });
    } else process.exit(0);
  });
  send({ type: 'hello' });
}
