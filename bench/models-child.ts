/**
 * Runs one model benchmark function in a fresh process (forked by bench/models.ts), so that the TensorFlow.js
 * backend chosen by one part (e.g. the VQGAN bench ending on 'cpu') never leaks into the next one ('auto'
 * keeps whatever backend is already initialised). IPC: { file, fn, args } -> { ok, result } | { ok: false, error }.
 */
import { pathToFileURL } from 'node:url';

export type ToModelsChild = { file: string; fn: string; args: unknown[] };
export type FromModelsChild = { ok: true; result: Record<string, unknown> } | { ok: false; error: string };

if (process.send) {
  process.once('message', async (m: ToModelsChild) => {
    let reply: FromModelsChild;
    try {
      const mod = (await import(pathToFileURL(m.file).href)) as Record<string, unknown>;
      const fn = mod[m.fn];
      if (typeof fn !== 'function') throw new Error(`${m.file} has no export ${m.fn}()`);
      reply = { ok: true, result: (await fn(...m.args)) as Record<string, unknown> };
    } catch (err) {
      reply = { ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) };
    }
    process.send!(reply, () => process.disconnect());
  });
}
