import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, mkdtemp, mkdir, writeFile, truncate, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import sharp from 'sharp';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { parquetMetadata } from 'hyparquet';
import type { InputConfig } from '../../src/pipeline/config-types.ts';
import type { Source, SourceRecord } from '../../src/sources/record.ts';
import { createSource, inputFromFlags } from '../../src/sources/index.ts';
import { ParquetFile } from '../../src/sources/parquet.ts';
import { closestName } from '../../src/sources/columns.ts';
import { CHECKPOINT_EVERY } from '../../src/sources/byte-records.ts';

const tmp = () => mkdtemp(join(tmpdir(), 'muse-sources-'));

async function collect(source: Source, start: number, end: number): Promise<SourceRecord[]> {
  const out: SourceRecord[] = [];
  for await (const r of source.rows(start, end)) out.push(r);
  return out;
}

function source(dir: string, input: Partial<InputConfig> & Pick<InputConfig, 'files' | 'format' | 'url_col'>): Source {
  return createSource({ header: false, ...input }, { dataRoot: dir, projectRoot: '/nonexistent-project' });
}

// ---------- parquet ----------

interface LaionRow {
  SAMPLE_ID: bigint;
  URL: string | null;
  TEXT: string | null;
  HEIGHT: number;
  WIDTH: number;
  similarity: number;
  NSFW: string;
}

function laionRows(n: number, idBase: number): LaionRow[] {
  return Array.from({ length: n }, (_, i) => ({
    SAMPLE_ID: i === 3 ? 2n ** 60n : BigInt(idBase + i),
    URL: `https://example.com/${idBase + i}.jpg`,
    TEXT: i % 10 === 5 ? null : `caption ${idBase + i} ${'x'.repeat(i % 7)}`,
    HEIGHT: 100 + i,
    WIDTH: 200 + i,
    similarity: 0.25 + i / 1000,
    NSFW: i % 3 === 0 ? 'UNLIKELY' : 'UNSURE',
  }));
}

function laionParquet(
  rows: LaionRow[],
  opts: {
    rowGroupSize: number;
    codec?: 'SNAPPY' | 'ZSTD';
    compressors?: Record<string, (b: Uint8Array) => Uint8Array>;
    offsetIndex?: boolean;
    pageSize?: number;
  },
): ArrayBuffer {
  const col = <K extends keyof LaionRow>(name: K) => rows.map((r) => r[name]);
  const offsetIndex = opts.offsetIndex ?? true;
  return parquetWriteBuffer({
    columnData: [
      { name: 'SAMPLE_ID', data: col('SAMPLE_ID'), type: 'INT64', offsetIndex },
      { name: 'URL', data: col('URL'), type: 'STRING', offsetIndex },
      { name: 'TEXT', data: col('TEXT'), type: 'STRING', offsetIndex },
      { name: 'HEIGHT', data: col('HEIGHT'), type: 'INT32', offsetIndex },
      { name: 'WIDTH', data: col('WIDTH'), type: 'INT32', offsetIndex },
      { name: 'similarity', data: col('similarity'), type: 'DOUBLE', offsetIndex },
      { name: 'NSFW', data: col('NSFW'), type: 'STRING', offsetIndex },
    ],
    rowGroupSize: opts.rowGroupSize,
    pageSize: opts.pageSize,
    codec: opts.codec ?? 'SNAPPY',
    compressors: opts.compressors,
  });
}

/** The record our source must produce for a LAION row (URL -> url, TEXT -> caption, the rest -> meta). */
function expectedLaion(r: LaionRow, row: number, file: string, fileRow: number): SourceRecord {
  const meta = {
    SAMPLE_ID: r.SAMPLE_ID > BigInt(Number.MAX_SAFE_INTEGER) ? r.SAMPLE_ID.toString() : Number(r.SAMPLE_ID),
    HEIGHT: r.HEIGHT,
    WIDTH: r.WIDTH,
    similarity: r.similarity,
    NSFW: r.NSFW,
  };
  return { row, file, fileRow, url: r.URL!, caption: r.TEXT, meta };
}

test('parquet: snappy LAION files with several row groups read by name, across row-group and file boundaries', async () => {
  const dir = await tmp();
  await mkdir(join(dir, 'laion'));
  const a = laionRows(250, 0);
  const b = laionRows(130, 1000);
  const fileA = join(dir, 'laion', 'part-00000.snappy.parquet');
  const fileB = join(dir, 'laion', 'part-00001.snappy.parquet');
  const bufA = laionParquet(a, { rowGroupSize: 100, pageSize: 512 }); // several pages per chunk, with an offset index
  assert.deepEqual(
    parquetMetadata(bufA).row_groups.map((g) => Number(g.num_rows)),
    [100, 100, 50],
  );
  assert.equal(parquetMetadata(bufA).row_groups[0].columns[1].meta_data?.codec, 'SNAPPY');
  await writeFile(fileA, Buffer.from(bufA));
  // Like older Spark output: no page offset index, so row groups are read whole.
  const bufB = laionParquet(b, { rowGroupSize: 60, offsetIndex: false });
  assert.equal(parquetMetadata(bufB).row_groups[0].columns[1].offset_index_offset, undefined);
  assert.ok(
    parquetMetadata(bufA).row_groups[0].columns[1].offset_index_offset !== undefined,
    'file A has an offset index',
  );
  await writeFile(fileB, Buffer.from(bufB));
  await writeFile(join(dir, 'laion', '_SUCCESS'), '');

  const src = source(dir, {
    files: ['${data_root}/laion/*.parquet'],
    format: 'parquet',
    url_col: 'URL',
    caption_col: 'TEXT',
  });
  assert.deepEqual(src.files, [fileA, fileB]);
  assert.deepEqual(await src.open(), { totalRows: 380 });

  const expected = [
    ...a.map((r, i) => expectedLaion(r, i, fileA, i)),
    ...b.map((r, i) => expectedLaion(r, 250 + i, fileB, i)),
  ];
  const all = await collect(src, 0, 380);
  assert.deepEqual(all, expected);
  assert.equal(all[3].meta.SAMPLE_ID, (2n ** 60n).toString()); // beyond 2^53: kept exact as a string
  assert.equal(all[5].caption, null);

  // Starts inside row group 0 of file A, ends inside row group 1 of file B.
  assert.deepEqual(await collect(src, 95, 320), expected.slice(95, 320));
  assert.deepEqual(await collect(src, 250, 251), expected.slice(250, 251));
  // The last shard's range runs past the end: clamped.
  assert.deepEqual(await collect(src, 370, 400), expected.slice(370));
  assert.deepEqual(await collect(src, 380, 390), []);
  await assert.rejects(collect(src, 5, 2), /invalid row range/);
});

test('parquet: meta_cols limits meta to the named columns; missing and empty URLs become error records', async () => {
  const dir = await tmp();
  const rows = laionRows(20, 0);
  rows[7].URL = null;
  rows[8].URL = '';
  const file = join(dir, 'm.parquet');
  await writeFile(file, Buffer.from(laionParquet(rows, { rowGroupSize: 6 })));
  const src = source(dir, {
    files: [file],
    format: 'parquet',
    url_col: 'URL',
    caption_col: 'TEXT',
    meta_cols: ['similarity', 'NSFW'],
  });
  await src.open();
  const recs = await collect(src, 0, 20);
  assert.equal(recs.length, 20);
  assert.deepEqual(recs[0].meta, { similarity: rows[0].similarity, NSFW: rows[0].NSFW });
  assert.equal(recs[7].error, `${file} row 8: URL column "URL" is null`);
  assert.equal(recs[8].error, `${file} row 9: URL column "URL" is empty`);
  assert.equal(recs[7].caption, rows[7].TEXT); // the rest of a bad row is still there for the manifest
  assert.equal(recs[9].error, undefined);
  assert.equal(recs[9].url, rows[9].URL);
});

/** A zstd frame made of raw (stored) blocks: valid zstd that any decoder must accept. */
function zstdRawFrame(input: Uint8Array): Uint8Array {
  const BLOCK = 1 << 17;
  const parts: Uint8Array[] = [];
  const header = new Uint8Array(9);
  const view = new DataView(header.buffer);
  view.setUint32(0, 0xfd2fb528, true); // magic
  header[4] = 0xa0; // frame header descriptor: 4-byte content size, single segment
  view.setUint32(5, input.length, true);
  parts.push(header);
  let pos = 0;
  do {
    const n = Math.min(BLOCK, input.length - pos);
    const last = pos + n >= input.length ? 1 : 0;
    const h = (n << 3) | last; // block type 0 = raw
    parts.push(Uint8Array.of(h & 0xff, (h >> 8) & 0xff, (h >> 16) & 0xff), input.subarray(pos, pos + n));
    pos += n;
  } while (pos < input.length);
  return Buffer.concat(parts);
}

test('parquet: ZSTD-coded column chunks are decoded through hyparquet-compressors', async () => {
  const dir = await tmp();
  const rows = laionRows(40, 500);
  const buf = laionParquet(rows, { rowGroupSize: 15, codec: 'ZSTD', compressors: { ZSTD: zstdRawFrame } });
  const codecs = new Set(parquetMetadata(buf).row_groups.flatMap((g) => g.columns.map((c) => c.meta_data?.codec)));
  assert.deepEqual([...codecs], ['ZSTD']);
  const file = join(dir, 'z.parquet');
  await writeFile(file, Buffer.from(buf));
  const src = source(dir, { files: [file], format: 'parquet', url_col: 'URL', caption_col: 'TEXT' });
  assert.deepEqual(await src.open(), { totalRows: 40 });
  assert.deepEqual(
    await collect(src, 10, 40),
    rows.slice(10).map((r, i) => expectedLaion(r, 10 + i, file, 10 + i)),
  );
});

test('parquet: timestamps become ISO strings in meta', async () => {
  const dir = await tmp();
  const file = join(dir, 't.parquet');
  const when = new Date('2021-08-01T12:34:56.000Z');
  await writeFile(
    file,
    Buffer.from(
      parquetWriteBuffer({
        columnData: [
          { name: 'url', data: ['https://a/1.jpg'], type: 'STRING' },
          { name: 'caption', data: [42 as unknown as string], type: 'INT32' },
          { name: 'seen', data: [when], type: 'TIMESTAMP' },
        ],
      }),
    ),
  );
  const src = source(dir, { files: [file], format: 'parquet', url_col: 'url', caption_col: 'caption' });
  await src.open();
  const [rec] = await collect(src, 0, 1);
  assert.equal(rec.caption, '42'); // numbers become strings
  assert.deepEqual(rec.meta, { seen: when.toISOString() });
});

test('parquet: a slice of a many-row-group file reads only the row groups it needs', async () => {
  const dir = await tmp();
  const n = 6000;
  const urls = Array.from({ length: n }, (_, i) => `https://example.com/${(i * 7919) % 100003}/${i}.jpg`);
  const texts = Array.from({ length: n }, (_, i) => `caption number ${i} ${((i * 2654435761) >>> 0).toString(36)}`);
  const file = join(dir, 'big.parquet');
  await writeFile(
    file,
    Buffer.from(
      parquetWriteBuffer({
        columnData: [
          { name: 'url', data: urls, type: 'STRING' },
          { name: 'caption', data: texts, type: 'STRING' },
        ],
        rowGroupSize: 200, // 30 row groups
      }),
    ),
  );
  const size = (await readFile(file)).length;

  const pf = new ParquetFile(file);
  const info = await pf.open();
  assert.equal(info.rows, n);
  const afterOpen = pf.bytesRead;
  const slice: unknown[] = [];
  for await (const batch of pf.rows(4010, 4020, ['url', 'caption'])) slice.push(...batch.map((r) => r.values));
  assert.deepEqual(
    slice,
    urls.slice(4010, 4020).map((url, i) => ({ url, caption: texts[4010 + i] })),
  );
  const sliceBytes = pf.bytesRead - afterOpen;
  assert.ok(sliceBytes > 0 && sliceBytes < size / 10, `slice read ${sliceBytes} of ${size} bytes`);

  // One column only: about half of what both columns cost.
  const before = pf.bytesRead;
  for await (const _ of pf.rows(4010, 4020, ['url'])) {
    /* drain */
  }
  assert.ok(pf.bytesRead - before < sliceBytes, 'reading one column must read less than two');

  // Control: reading everything touches (nearly) the whole file.
  const beforeAll = pf.bytesRead;
  let count = 0;
  for await (const batch of pf.rows(0, n, null)) count += batch.length;
  assert.equal(count, n);
  assert.ok(pf.bytesRead - beforeAll > size / 2);
});

// ---------- TSV / CSV / JSONL ----------

test('tsv: headerless CC12M (url, caption) and CC3M (caption, url) column orders', async () => {
  const dir = await tmp();
  const cc12m = join(dir, 'cc12m.tsv');
  await writeFile(
    cc12m,
    'https://a/1.jpg\ta <PERSON> on a bike\r\nhttps://a/2.jpg\tcaption "with" quotes\nhttps://a/3.jpg\t\n',
  );
  const cc3m = join(dir, 'Train_GCC-training.tsv');
  await writeFile(cc3m, 'a dog in snow\thttps://b/1.jpg\nsunset , beach\thttps://b/2.jpg');

  const s12 = source(dir, {
    files: [cc12m],
    format: 'tsv',
    columns: ['url', 'caption'],
    url_col: 'url',
    caption_col: 'caption',
  });
  assert.deepEqual(await s12.open(), { totalRows: 3 });
  assert.deepEqual(await collect(s12, 0, 3), [
    { row: 0, file: cc12m, fileRow: 0, url: 'https://a/1.jpg', caption: 'a <PERSON> on a bike', meta: {} },
    { row: 1, file: cc12m, fileRow: 1, url: 'https://a/2.jpg', caption: 'caption "with" quotes', meta: {} },
    { row: 2, file: cc12m, fileRow: 2, url: 'https://a/3.jpg', caption: '', meta: {} },
  ]);

  const s3 = source(dir, {
    files: [cc3m],
    format: 'tsv',
    columns: ['caption', 'url'],
    url_col: 'url',
    caption_col: 'caption',
  });
  assert.deepEqual(await s3.open(), { totalRows: 2 }); // no final newline: the last line still counts
  const recs = await collect(s3, 0, 2);
  assert.deepEqual(
    recs.map((r) => [r.url, r.caption]),
    [
      ['https://b/1.jpg', 'a dog in snow'],
      ['https://b/2.jpg', 'sunset , beach'],
    ],
  );
});

test('tsv: bad rows become error records at their own position; blank lines at the end are not rows', async () => {
  const dir = await tmp();
  const file = join(dir, 'bad.tsv');
  await writeFile(
    file,
    Buffer.concat([
      Buffer.from('url\tcaption\n'),
      Buffer.from('https://a/0.jpg\tfine\n'),
      Buffer.from('https://a/1.jpg\tone\textra\n'), // 3 columns
      Buffer.from('https://a/2.jpg\tbad '),
      Buffer.from([0xff, 0xfe]),
      Buffer.from(' bytes\n'), // invalid UTF-8
      Buffer.from('\tno url\n'), // empty URL
      Buffer.from('\n'), // blank line in the middle: a bad row
      Buffer.from('https://a/5.jpg\tstill fine\n'),
      Buffer.from('\n\r\n'), // blank lines at the end: not rows
    ]),
  );
  const src = source(dir, { files: [file], format: 'tsv', header: true, url_col: 'url', caption_col: 'caption' });
  assert.deepEqual(await src.open(), { totalRows: 6 });
  const recs = await collect(src, 0, 6);
  assert.deepEqual(
    recs.map((r) => r.row),
    [0, 1, 2, 3, 4, 5],
  );
  assert.equal(recs[0].error, undefined);
  assert.equal(recs[1].error, `${file} line 3 (row 2): expected 2 columns (url, caption), found 3`);
  assert.equal(recs[2].error, `${file} line 4 (row 3): invalid UTF-8 in column 2 "caption"`);
  assert.equal(recs[3].error, `${file} line 5 (row 4): URL column "url" is empty`);
  assert.equal(recs[3].caption, 'no url');
  assert.equal(recs[4].error, `${file} line 6 (row 5): empty line`);
  assert.equal(recs[5].error, undefined);
  assert.equal(recs[5].url, 'https://a/5.jpg');
  assert.equal(recs[5].caption, 'still fine');
  // Starting in the middle gives the same records.
  assert.deepEqual(await collect(src, 2, 6), recs.slice(2));
});

test('tsv: large file (several read chunks and seek checkpoints) reads any slice correctly', async () => {
  const dir = await tmp();
  const file = join(dir, 'big.tsv');
  const n = 2 * CHECKPOINT_EVERY + 1234;
  const line = (i: number) => `https://example.com/${i}.jpg\tcaption ${i} ${'é'.repeat(i % 50)} ${'-'.repeat(60)}`;
  await writeFile(file, Array.from({ length: n }, (_, i) => line(i)).join('\n') + '\n');
  assert.ok((await readFile(file)).length > 2 << 20, 'file should span several 1 MiB reads');
  const src = source(dir, {
    files: [file],
    format: 'tsv',
    columns: ['url', 'caption'],
    url_col: 'url',
    caption_col: 'caption',
  });
  assert.deepEqual(await src.open(), { totalRows: n });
  for (const start of [0, CHECKPOINT_EVERY - 1, CHECKPOINT_EVERY, 2 * CHECKPOINT_EVERY + 5, n - 3]) {
    const recs = await collect(src, start, start + 3);
    assert.deepEqual(
      recs.map((r) => `${r.url}\t${r.caption}`),
      [0, 1, 2].map((k) => line(start + k)).slice(0, Math.min(3, n - start)),
    );
    assert.deepEqual(
      recs.map((r) => r.row),
      recs.map((_, k) => start + k),
    );
  }
});

test('csv: RFC 4180 quoting with embedded commas, quotes and newlines; BOM and CRLF', async () => {
  const dir = await tmp();
  const file = join(dir, 'data.csv');
  await writeFile(
    file,
    '\uFEFFurl,caption,similarity\r\n' +
      'https://a/0.jpg,plain,0.31\r\n' +
      '"https://a/1.jpg","a, b and ""c""",0.4\r\n' +
      'https://a/2.jpg,"two\nlines, here",0.5\r\n' +
      'https://a/3.jpg,"bad" quote,0.6\r\n' +
      'https://a/4.jpg,,0.7\r\n',
  );
  await appendFile(
    file,
    Buffer.concat([Buffer.from('https://a/5.jpg,"x, y '), Buffer.from([0xc3]), Buffer.from('",0.8\r\n')]),
  );
  const src = source(dir, { files: [file], format: 'csv', header: true, url_col: 'url', caption_col: 'caption' });
  assert.deepEqual(await src.open(), { totalRows: 6 });
  const recs = await collect(src, 0, 6);
  assert.deepEqual(
    recs.slice(0, 3).map((r) => [r.url, r.caption, r.meta]),
    [
      ['https://a/0.jpg', 'plain', { similarity: '0.31' }],
      ['https://a/1.jpg', 'a, b and "c"', { similarity: '0.4' }],
      ['https://a/2.jpg', 'two\nlines, here', { similarity: '0.5' }],
    ],
  );
  assert.equal(recs[3].error, `${file} line 6 (row 4): unexpected text after the closing quote (column 2 "caption")`);
  assert.equal(recs[4].caption, '');
  assert.equal(recs[4].error, undefined);
  assert.equal(recs[5].error, `${file} line 8 (row 6): invalid UTF-8 in column 2 "caption"`);
  // Slicing after the two-line record keeps rows and lines right.
  const tail = await collect(src, 3, 6);
  assert.deepEqual(tail, recs.slice(3));
});

test('csv: many multi-line records across checkpoints and read chunks', async () => {
  const dir = await tmp();
  const file = join(dir, 'ml.csv');
  const n = CHECKPOINT_EVERY + 500;
  const caption = (i: number) => `line one ${i}\nline, two "${i}"${'z'.repeat(150)}`;
  const body = Array.from({ length: n }, (_, i) => `https://a/${i}.jpg,"${caption(i).replace(/"/g, '""')}"`).join('\n');
  await writeFile(file, `url,caption\n${body}\nhttps://a/x.jpg,a"b,c\n`);
  const src = source(dir, { files: [file], format: 'csv', header: true, url_col: 'url', caption_col: 'caption' });
  assert.deepEqual(await src.open(), { totalRows: n + 1 });
  const recs = await collect(src, CHECKPOINT_EVERY - 1, CHECKPOINT_EVERY + 2);
  assert.deepEqual(
    recs.map((r) => r.caption),
    [-1, 0, 1].map((k) => caption(CHECKPOINT_EVERY + k)),
  );
  // Last row: 3 fields (a literal quote inside an unquoted field is data). Its line = 1 header + 2 per record + 1.
  const [last] = await collect(src, n, n + 1);
  assert.equal(last.error, `${file} line ${2 * n + 2} (row ${n + 1}): expected 2 columns (url, caption), found 3`);
});

test('jsonl: objects become records; invalid JSON and non-objects become errors in place', async () => {
  const dir = await tmp();
  const file = join(dir, 'meta.jsonl');
  await writeFile(
    file,
    [
      JSON.stringify({ url: 'https://a/0.jpg', caption: 'zero', punsafe: 0.1 }),
      '{"url": "https://a/1.jpg", "caption": ',
      '[1, 2]',
      JSON.stringify({ url: 'https://a/3.jpg', caption: null, extra: { k: 1 } }),
      JSON.stringify({ caption: 'no url' }),
    ].join('\n') + '\n\n',
  );
  const src = source(dir, { files: [file], format: 'jsonl', url_col: 'url', caption_col: 'caption' });
  assert.deepEqual(await src.open(), { totalRows: 5 });
  const recs = await collect(src, 0, 5);
  assert.deepEqual(recs[0], {
    row: 0,
    file,
    fileRow: 0,
    url: 'https://a/0.jpg',
    caption: 'zero',
    meta: { punsafe: 0.1 },
  });
  assert.match(recs[1].error ?? '', new RegExp(`^${file} row 2: not valid JSON`));
  assert.equal(recs[2].error, `${file} row 3: expected a JSON object, found an array`);
  assert.deepEqual(
    [recs[3].url, recs[3].caption, recs[3].meta, recs[3].error],
    ['https://a/3.jpg', null, { extra: { k: 1 } }, undefined],
  );
  assert.equal(recs[4].error, `${file} row 5: URL column "url" is missing`);

  // No object among the first lines: nothing to check the columns against; the rows are errors.
  const junk = join(dir, 'junk.jsonl');
  await writeFile(junk, 'oops\n[]\n');
  const js = source(dir, { files: [junk], format: 'jsonl', url_col: 'url' });
  assert.deepEqual(await js.open(), { totalRows: 2 });
  assert.deepEqual(
    (await collect(js, 0, 2)).map((r) => r.error?.replace(/\(.*\)/, '(…)')),
    [`${junk} row 1: not valid JSON (…)`, `${junk} row 2: expected a JSON object, found an array`],
  );
  // A misnamed URL key is caught by open() from the first object.
  await assert.rejects(
    source(dir, { files: [file], format: 'jsonl', url_col: 'URL' }).open(),
    /column "URL" \(url_col\) not found; did you mean "url"\?\. keys of the first object: "url", "caption", "punsafe"/,
  );
});

// ---------- ImageNet ----------

async function tinyJpeg(path: string, shade: number): Promise<void> {
  await sharp({ create: { width: 4, height: 4, channels: 3, background: { r: shade, g: 0, b: 0 } } })
    .jpeg()
    .toFile(path);
}

test('imagenet: train/<wnid> folders, class index in sorted wnid order, captions from LOC_synset_mapping.txt', async () => {
  const dir = await tmp();
  const root = join(dir, 'imagenet');
  const layout: Record<string, string[]> = {
    n02102040: ['n02102040_2.JPEG', 'n02102040_10.jpg'],
    n01440764: ['n01440764_1.JPEG'],
    n01443537: ['b.png', 'a.jpeg', 'notes.txt'],
  };
  for (const [wnid, names] of Object.entries(layout)) {
    await mkdir(join(root, 'train', wnid), { recursive: true });
    for (const name of names) {
      if (name.endsWith('.txt')) await writeFile(join(root, 'train', wnid, name), 'not an image');
      else await tinyJpeg(join(root, 'train', wnid, name), 10);
    }
  }
  await writeFile(
    join(root, 'LOC_synset_mapping.txt'),
    'n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\nn02102040 English springer, English springer spaniel\n',
  );
  const src = source(dir, { files: ['${data_root}/imagenet'], format: 'imagenet', url_col: 'url' });
  assert.deepEqual(await src.open(), { totalRows: 5 });
  const recs = await collect(src, 0, 5);
  const t = join(root, 'train');
  assert.deepEqual(recs, [
    {
      row: 0,
      file: root,
      fileRow: 0,
      url: '',
      caption: 'tench',
      localPath: join(t, 'n01440764', 'n01440764_1.JPEG'),
      cls: 0,
      meta: { wnid: 'n01440764' },
    },
    {
      row: 1,
      file: root,
      fileRow: 1,
      url: '',
      caption: 'goldfish',
      localPath: join(t, 'n01443537', 'a.jpeg'),
      cls: 1,
      meta: { wnid: 'n01443537' },
    },
    {
      row: 2,
      file: root,
      fileRow: 2,
      url: '',
      caption: 'goldfish',
      localPath: join(t, 'n01443537', 'b.png'),
      cls: 1,
      meta: { wnid: 'n01443537' },
    },
    {
      row: 3,
      file: root,
      fileRow: 3,
      url: '',
      caption: 'English springer',
      localPath: join(t, 'n02102040', 'n02102040_10.jpg'),
      cls: 2,
      meta: { wnid: 'n02102040' },
    },
    {
      row: 4,
      file: root,
      fileRow: 4,
      url: '',
      caption: 'English springer',
      localPath: join(t, 'n02102040', 'n02102040_2.JPEG'),
      cls: 2,
      meta: { wnid: 'n02102040' },
    },
  ]);
  assert.deepEqual(await collect(src, 2, 4), recs.slice(2, 4));
});

test('imagenet: <wnid> folders directly under the root, no mapping file -> caption null', async () => {
  const dir = await tmp();
  for (const wnid of ['n03000000', 'n01000000']) {
    await mkdir(join(dir, 'flat', wnid), { recursive: true });
    await tinyJpeg(join(dir, 'flat', wnid, 'x.JPEG'), 200);
  }
  const src = source(dir, { files: [join(dir, 'flat')], format: 'imagenet', url_col: 'url' });
  assert.deepEqual(await src.open(), { totalRows: 2 });
  const recs = await collect(src, 0, 10);
  assert.deepEqual(
    recs.map((r) => [r.cls, r.meta.wnid, r.caption]),
    [
      [0, 'n01000000', null],
      [1, 'n03000000', null],
    ],
  );
  const empty = join(dir, 'empty');
  await mkdir(empty);
  await assert.rejects(
    source(dir, { files: [empty], format: 'imagenet', url_col: 'url' }).open(),
    /no class folders found/,
  );
});

// ---------- bad metadata ----------

test('bad input: truncated parquet is rejected by open() naming the file', async () => {
  const dir = await tmp();
  const good = join(dir, 'a.parquet');
  const bad = join(dir, 'b.parquet');
  const buf = Buffer.from(laionParquet(laionRows(50, 0), { rowGroupSize: 20 }));
  await writeFile(good, buf);
  await writeFile(bad, buf);
  await truncate(bad, Math.floor(buf.length / 2));
  const src = source(dir, { files: [join(dir, '*.parquet')], format: 'parquet', url_col: 'URL', caption_col: 'TEXT' });
  await assert.rejects(src.open(), (err: Error) => {
    assert.match(err.message, new RegExp(`^${bad}: not a valid parquet file \\(`));
    return true;
  });
  await writeFile(bad, 'PAR1');
  await assert.rejects(src.open(), new RegExp(`${bad}: not a valid parquet file \\(only 4 bytes\\)`));
});

test('bad input: missing or misspelled columns name the file, the column and the closest name', async () => {
  const dir = await tmp();
  const file = join(dir, 'p.parquet');
  await writeFile(file, Buffer.from(laionParquet(laionRows(5, 0), { rowGroupSize: 5 })));
  await assert.rejects(
    source(dir, { files: [file], format: 'parquet', url_col: 'url', caption_col: 'TXET' }).open(),
    (err: Error) => {
      assert.ok(err.message.startsWith(`${file}: `), err.message);
      assert.match(err.message, /column "url" \(url_col\) not found; did you mean "URL"\?/);
      assert.match(err.message, /column "TXET" \(caption_col\) not found; did you mean "TEXT"\?/);
      assert.match(
        err.message,
        /available columns: "SAMPLE_ID", "URL", "TEXT", "HEIGHT", "WIDTH", "similarity", "NSFW"/,
      );
      return true;
    },
  );
  await assert.rejects(
    source(dir, { files: [file], format: 'parquet', url_col: 'URL', meta_cols: ['punsafe'] }).open(),
    /column "punsafe" \(meta_cols\) not found\. available/,
  );

  const tsv = join(dir, 'h.tsv');
  await writeFile(tsv, 'URL\tTEXT\nhttps://a\tb\n');
  await assert.rejects(
    source(dir, { files: [tsv], format: 'tsv', header: true, url_col: 'url', caption_col: 'caption' }).open(),
    new RegExp(
      `${tsv}: column "url" \\(url_col\\) not found; did you mean "URL"\\?; column "caption" \\(caption_col\\) not found\\.`,
    ),
  );
  await assert.rejects(
    source(dir, { files: [tsv], format: 'tsv', columns: ['image_url', 'caption'], url_col: 'url' }).open(),
    /column "url" \(url_col\) not found\. available columns: "image_url", "caption"/,
  );
  await assert.rejects(
    source(dir, { files: [tsv], format: 'tsv', url_col: 'url' }).open(),
    /without a header needs input.columns/,
  );
  assert.throws(
    () => source(dir, { files: [tsv], format: 'tsv', header: true, columns: ['a', 'b'], url_col: 'a' }),
    /input.columns is only for tsv files without a header/,
  );

  assert.equal(closestName('similarty', ['URL', 'similarity']), 'similarity');
  assert.equal(closestName('caption', ['URL', 'TEXT']), undefined);
});

test('bad input: every file is checked and all problems are reported together', async () => {
  const dir = await tmp();
  await writeFile(join(dir, 'a.tsv'), 'https://a\tb\n');
  await writeFile(join(dir, 'b.tsv'), gzipSync('https://a\tb\n'));
  const src = source(dir, {
    files: [join(dir, 'a.tsv'), join(dir, 'b.tsv'), join(dir, 'c.tsv')],
    format: 'tsv',
    columns: ['url', 'caption'],
    url_col: 'url',
  });
  await assert.rejects(src.open(), (err: Error) => {
    assert.match(err.message, /^2 of 3 input files have problems/);
    assert.ok(err.message.includes(`${join(dir, 'b.tsv')}: looks gzip-compressed`), err.message);
    assert.ok(err.message.includes(`${join(dir, 'c.tsv')}: file not found`), err.message);
    return true;
  });
});

test('file patterns: variables, wildcards in the last component, sorted order, clear errors', async () => {
  const dir = await tmp();
  await mkdir(join(dir, 'd'));
  for (const name of ['part-2.tsv', 'part-10.tsv', 'part-1.tsv', '.part-3.tsv', 'other.csv']) {
    await writeFile(join(dir, 'd', name), 'https://a\tb\n');
  }
  const mk = (files: string[]) => source(dir, { files, format: 'tsv', columns: ['url', 'caption'], url_col: 'url' });
  assert.deepEqual(
    mk(['${data_root}/d/part-*.tsv', '${data_root}/d/part-?.tsv']).files,
    ['part-1.tsv', 'part-10.tsv', 'part-2.tsv'].map((n) => join(dir, 'd', n)),
  );
  const s = mk(['${data_root}/d/part-*.tsv']);
  assert.deepEqual(await s.open(), { totalRows: 3 });
  assert.deepEqual(
    (await collect(s, 0, 3)).map((r) => [r.row, r.fileRow, r.file]),
    [
      [0, 0, join(dir, 'd', 'part-1.tsv')],
      [1, 0, join(dir, 'd', 'part-10.tsv')],
      [2, 0, join(dir, 'd', 'part-2.tsv')],
    ],
  );
  assert.throws(
    () => mk(['${data_root}/d/*.parquet']),
    /nothing matched "\$\{data_root\}\/d\/\*\.parquet" \(no files match in/,
  );
  assert.throws(() => mk(['${data_root}/missing/*.tsv']), /nothing matched .*cannot be read/);
  assert.throws(() => mk(['${nope}/x.tsv']), /unknown variable \$\{nope\}/);
  assert.throws(() => mk(['${data_root}/*/x.tsv']), /only supported in the last path component/);
  assert.throws(() => mk([]), /input.files is empty/);
});

test('inputFromFlags: format from the extension and img2dataset column defaults', () => {
  assert.deepEqual(inputFromFlags({ files: ['x/cc12m.tsv'], columns: ['url', 'caption'] }), {
    files: ['x/cc12m.tsv'],
    format: 'tsv',
    header: false,
    url_col: 'url',
    caption_col: 'caption',
    columns: ['url', 'caption'],
  });
  assert.equal(inputFromFlags({ files: ['a.parquet'], urlCol: 'URL' }).url_col, 'URL');
  assert.throws(() => inputFromFlags({ files: ['a.txt'] }), /pass --format/);
});
