/**
 * A tokenize worker process (`muse-data tokenize --workers N` starts N of them). It loads the models once, then
 * receives shard numbers over IPC, writes each shard's cache files (atomically) and reports their manifest
 * entries; the parent alone writes the manifests. It exits when the parent goes away, so a killed run leaves no
 * orphan writing into the dataset.
 */
import { initBackend } from '../runtime/backend.ts';
import {
  loadTokenizeContext,
  tokenizeShard,
  type FromTokenizeWorker,
  type ToTokenizeWorker,
  type TokenizeContext,
} from './run-tokenize.ts';

const send = (m: FromTokenizeWorker) => process.send!(m);

if (process.send) {
  process.on('disconnect', () => process.exit(1));
  let ctx: TokenizeContext | undefined;
  process.on('message', async (m: ToTokenizeWorker) => {
    try {
      if (m.type === 'init') {
        const { backend, ...options } = m.options;
        await initBackend(backend, { quiet: true });
        ctx = await loadTokenizeContext(options);
        send({ type: 'ready' });
      } else if (m.type === 'shard') {
        send({ type: 'done', shard: m.shard, result: await tokenizeShard(m.shard, ctx!) });
      } else {
        ctx?.dispose();
        process.exit(0);
      }
    } catch (err) {
      send({ type: 'error', shard: m.type === 'shard' ? m.shard : null, message: (err as Error).stack ?? String(err) });
    }
  });
  send({ type: 'hello' });
}
