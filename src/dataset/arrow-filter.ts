/**
 * Drops rows from an Arrow IPC file by their `key` column, keeping the schema (with its metadata) and every
 * other row's values exactly (record batches are sliced, never decoded and rebuilt). Reads batch by batch, so a
 * multi-GB text-embedding cache is not loaded whole.
 */
import { open } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { RecordBatchFileWriter, RecordBatchReader, type RecordBatch } from 'apache-arrow';
import { createAtomicStream } from '../util/atomic.ts';

async function* batches(file: string): AsyncGenerator<RecordBatch> {
  const fh = await open(file, 'r');
  try {
    const reader = await RecordBatchReader.from(fh);
    yield* reader;
  } finally {
    await fh.close();
  }
}

function keyColumn(batch: RecordBatch, file: string) {
  const col = batch.getChild('key');
  if (!col) throw new Error(`${file}: no 'key' column (columns: ${batch.schema.fields.map((f) => f.name).join(', ')})`);
  return col;
}

/** Rows of `file` whose key is in `drop`; 0 means the file is left untouched. Returns the rows dropped. */
export async function dropArrowRows(file: string, drop: ReadonlySet<string>): Promise<number> {
  // First pass: count only, so a file with nothing to drop (e.g. on a rerun) is never rewritten.
  let found = 0;
  for await (const b of batches(file)) {
    const keys = keyColumn(b, file);
    for (let i = 0; i < b.numRows; i++) if (drop.has(keys.get(i) as string)) found++;
  }
  if (found === 0) return 0;

  const out = await createAtomicStream(file);
  const writer = new RecordBatchFileWriter();
  const written = pipeline(writer.toNodeStream(), out.stream, { end: false });
  let wrote = false;
  let last: RecordBatch | undefined;
  for await (const b of batches(file)) {
    const keys = keyColumn(b, file);
    let start = 0;
    for (let i = 0; i <= b.numRows; i++) {
      if (i === b.numRows || drop.has(keys.get(i) as string)) {
        if (i > start) {
          writer.write(b.slice(start, i));
          wrote = true;
        }
        start = i + 1;
      }
    }
    last = b;
  }
  // Every row dropped: an empty batch still carries the schema.
  if (!wrote && last) writer.write(last.slice(0, 0));
  writer.finish();
  await written;
  await out.commit();
  return found;
}
