/**
 * Worker thread of a big `optout import`: parses, normalises and hashes blocks of lines (the CPU-heavy half)
 * while the importing thread writes the previous blocks to SQLite. Blocks arrive and leave in order.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ImportHeaderError, LineProcessor, type ImportFormat } from './import-lines.ts';

export type ToImportWorker = { text: string };
export type FromImportWorker = { batch: import('./import-lines.ts').ParsedBatch } | { fatal: string };

const { format, source } = (workerData as { data: { format?: ImportFormat; source: string } }).data;
const processor = new LineProcessor(format, source);

parentPort!.on('message', (m: ToImportWorker) => {
  try {
    const batch = processor.process(m.text.split('\n'));
    parentPort!.postMessage({ batch } satisfies FromImportWorker, [
      batch.hashes.buffer as ArrayBuffer,
      batch.images.buffer as ArrayBuffer,
    ]);
  } catch (err) {
    parentPort!.postMessage({
      fatal: err instanceof ImportHeaderError ? err.message : ((err as Error).stack ?? String(err)),
    } satisfies FromImportWorker);
  }
});
