/**
 * Writes datasets/sample/sample.parquet from the sample catalog, in the LAION-400M column layout
 * (SAMPLE_ID, URL, TEXT, HEIGHT, WIDTH, LICENSE, NSFW, similarity), snappy, 3 row groups of 100 rows.
 * HEIGHT/WIDTH hold the real pixel sizes (unlike raw LAION, where they are swapped).
 *
 *   node --import tsx src/sample-data/build-parquet.ts
 *
 * Build-time script only: hyparquet-writer is a devDependency and nothing at run time imports this file.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { sampleCatalog } from './catalog.ts';

const OUT = fileURLToPath(new URL('../../datasets/sample/sample.parquet', import.meta.url));

const items = sampleCatalog();
const buffer = parquetWriteBuffer({
  columnData: [
    { name: 'SAMPLE_ID', type: 'INT64', data: items.map((it) => BigInt(it.sampleId)) },
    { name: 'URL', type: 'STRING', data: items.map((it) => it.url) },
    { name: 'TEXT', type: 'STRING', data: items.map((it) => it.caption) },
    { name: 'HEIGHT', type: 'INT32', data: items.map((it) => it.height) },
    { name: 'WIDTH', type: 'INT32', data: items.map((it) => it.width) },
    { name: 'LICENSE', type: 'STRING', data: items.map(() => '?') },
    { name: 'NSFW', type: 'STRING', data: items.map((it) => it.nsfw) },
    { name: 'similarity', type: 'DOUBLE', data: items.map((it) => it.similarity) },
  ],
  codec: 'SNAPPY',
  rowGroupSize: 100,
  createdBy: 'muse src/sample-data/build-parquet.ts',
});

mkdirSync(path.dirname(OUT), { recursive: true });
writeFileSync(OUT + '.tmp', new Uint8Array(buffer));
renameSync(OUT + '.tmp', OUT);
console.log(`wrote ${OUT}: ${items.length} rows, ${buffer.byteLength} bytes`);
