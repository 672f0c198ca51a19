/**
 * Opt-out: URL normalisation, the index lists (add/remove/import), fetch consulting the index (an opted-out URL
 * is never requested, an opted-out image is not written), and `apply` removing samples from a fetched dataset,
 * also when killed at random moments and rerun.
 */
import { SampleIndex } from '../../src/dataset/sample-index.ts';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import sharp from 'sharp';
import {
  Field,
  FixedSizeList,
  Int16,
  Schema,
  Table,
  Utf8,
  tableFromIPC,
  tableToIPC,
  vectorFromArray,
} from 'apache-arrow';
import { normalizeUrl, urlHash } from '../../src/optout/normalize-url.ts';
import { openIndex } from '../../src/index-db/db.ts';
import { OptoutStore } from '../../src/optout/store.ts';
import { importOptoutFile, importOptouts } from '../../src/optout/import.ts';
import { applyOptouts } from '../../src/optout/apply.ts';
import { deepMerge, loadPipelineFile, resolvePipeline } from '../../src/pipeline/config.ts';
import { runFetch } from '../../src/pipeline/run-fetch.ts';
import type { PipelineConfig } from '../../src/pipeline/config-types.ts';
import { readManifest, type ManifestRow } from '../../src/dataset/manifest.ts';
import { readStats } from '../../src/dataset/stats.ts';
import { readTarSamples } from '../../src/shards/tar-reader.ts';
import { pendingRewrites } from '../../src/dataset/rewrite.ts';
import { runCli } from '../helpers/cli.ts';
import { copyDataRoot } from '../helpers/serve-fixture.ts';

const root = path.resolve(import.meta.dirname, '../..');
const tmp = (p: string) => mkdtemp(path.join(os.tmpdir(), `muse-optout-${p}-`));

test('URL normalisation table', () => {
  const table: Array<[string, string]> = [
    ['HTTP://Example.COM/a.jpg', 'http://example.com/a.jpg'], // scheme and host lower-cased
    ['https://example.com/Path/IMG.JPG', 'https://example.com/Path/IMG.JPG'], // path case kept
    ['http://example.com:80/a.jpg', 'http://example.com/a.jpg'], // default port dropped
    ['https://example.com:443/a.jpg', 'https://example.com/a.jpg'],
    ['http://example.com:443/a.jpg', 'http://example.com:443/a.jpg'], // not the default for http
    ['https://example.com:8443/a.jpg', 'https://example.com:8443/a.jpg'],
    ['http://example.com/a.jpg#section', 'http://example.com/a.jpg'], // fragment dropped
    ['http://example.com/a.jpg#', 'http://example.com/a.jpg'],
    ['http://example.com/a.jpg?b=2&a=1', 'http://example.com/a.jpg?b=2&a=1'], // query order kept
    ['http://example.com/a.jpg?', 'http://example.com/a.jpg?'], // empty query kept
    ['http://example.com/dir/', 'http://example.com/dir/'], // trailing slash kept
    ['http://example.com/dir', 'http://example.com/dir'],
    ['http://example.com', 'http://example.com/'], // an empty path is '/'
    ['http://example.com/%7euser/%41%62c.jpg', 'http://example.com/~user/Abc.jpg'], // unreserved decoded
    ['http://example.com/a%2fb%3f.jpg?q=%2f%26%3d', 'http://example.com/a%2Fb%3F.jpg?q=%2F%26%3D'], // reserved: hex upper-cased
    ['http://example.com/%e4%b8%ad.jpg', 'http://example.com/%E4%B8%AD.jpg'],
    ['http://example.com/中.jpg', 'http://example.com/%E4%B8%AD.jpg'], // raw UTF-8 and its encoding agree
    ['http://example.com/a b.jpg', 'http://example.com/a%20b.jpg'],
    ['http://Bücher.example/ä.jpg', 'http://xn--bcher-kva.example/%C3%A4.jpg'], // IDN to punycode
    ['http://xn--bcher-kva.example/a.jpg', 'http://xn--bcher-kva.example/a.jpg'],
    ['http://user:p%61ss@Example.com/a.jpg', 'http://user:pass@example.com/a.jpg'],
    ['  http://example.com/a.jpg  ', 'http://example.com/a.jpg'], // surrounding blanks are not part of a URL
    ['http://example.com/100%/a.jpg', 'http://example.com/100%/a.jpg'], // a lone % stays
  ];
  for (const [input, expected] of table) assert.equal(normalizeUrl(input), expected, input);
  // Equivalent spellings hash alike; the hash is the first 8 bytes of sha256(normalised URL).
  assert.deepEqual(urlHash('HTTP://Example.COM:80/%7ex.jpg#f'), urlHash('http://example.com/~x.jpg'));
  assert.deepEqual(
    urlHash('http://example.com/a.jpg'),
    createHash('sha256').update('http://example.com/a.jpg').digest().subarray(0, 8),
  );
  assert.notDeepEqual(urlHash('http://example.com/A.jpg'), urlHash('http://example.com/a.jpg'));
  for (const bad of [
    'not a url',
    '',
    'ftp://example.com/a.jpg',
    'data:image/png;base64,AAAA',
    'http://exa mple.com/',
  ]) {
    assert.throws(
      () => normalizeUrl(bad),
      (e: Error) => e.message.includes(JSON.stringify(bad)),
      bad,
    );
  }
});

test('add, remove, list; adding again is a no-op; invalid input is rejected by name', async () => {
  const index = openIndex(await tmp('store'));
  try {
    const store = new OptoutStore(index);
    const sha = 'AB'.repeat(32);
    const a = store.addUrls([
      'http://example.com/a.jpg',
      'HTTP://EXAMPLE.com/a.jpg#x',
      'http://example.com/b.jpg',
      'nope',
    ]);
    assert.deepEqual({ added: a.added, already: a.already }, { added: 2, already: 1 });
    assert.deepEqual(
      a.invalid.map((r) => r.input),
      ['nope'],
    );
    assert.equal(store.addImages([sha, 'abc']).invalid[0].input, 'abc');
    assert.ok(store.hasUrl('http://example.com:80/a.jpg'));
    assert.ok(store.hasImage(sha.toLowerCase()));
    assert.equal(
      store.storedUrl('http://example.com/a.jpg'),
      'http://example.com/a.jpg',
      'the first spelling is kept for display',
    );
    assert.deepEqual([...store.listUrls()].map((r) => r.url).sort(), [
      'http://example.com/a.jpg',
      'http://example.com/b.jpg',
    ]);
    assert.deepEqual(
      [...store.listImages()].map((r) => r.sha256),
      [sha.toLowerCase()],
    );
    const r = store.removeUrls(['http://EXAMPLE.com/b.jpg', 'http://example.com/zzz.jpg']);
    assert.equal(r.removed, 1);
    assert.deepEqual(r.notFound, ['http://example.com/zzz.jpg']);
    assert.ok(!store.hasUrl('http://example.com/b.jpg'));
    assert.equal(store.removeImages([sha]).removed, 1);
    assert.deepEqual(store.counts(), { urls: 1, images: 0 });
  } finally {
    index.close();
  }
});

test('import: plain lines, CSV and JSONL; malformed lines reported with their number, the rest imported', async () => {
  const dir = await tmp('import');
  const index = openIndex(dir);
  try {
    const store = new OptoutStore(index);
    const sha = 'cd'.repeat(32);
    const lines = [
      '\ufeffhttp://example.com/1.jpg',
      '# a comment',
      '',
      'not a url',
      `${sha}`,
      'http://example.com/2.jpg\r',
      'ftp://example.com/x',
      'http://example.com/1.jpg',
    ];
    await writeFile(path.join(dir, 'list.txt'), lines.join('\n'));
    // Parsed in a worker thread, in blocks of a few lines: line numbers still count from the file's start.
    const r = await importOptoutFile(store, path.join(dir, 'list.txt'), { parallel: true, blockChars: 20 });
    assert.equal(r.format, 'lines');
    assert.deepEqual(
      r.errors.map((e) => e.line),
      [4, 7],
    );
    assert.match(r.errors[0].message, /not a valid URL: "not a url"/);
    assert.deepEqual(r.urls, { added: 2, already: 1 });
    assert.deepEqual(r.images, { added: 1, already: 0 });

    const csv = [
      'id,URL,caption',
      '1,http://example.com/c1.jpg,"a, b"',
      '2,"http://example.com/c2.jpg?a=1,2",x',
      '3,"unterminated,x',
      '4,,y',
      '5,notaurl,z',
    ];
    await writeFile(path.join(dir, 'list.csv'), csv.join('\n') + '\n');
    const c = await importOptoutFile(store, path.join(dir, 'list.csv'));
    assert.equal(c.format, 'csv');
    assert.deepEqual(
      c.errors.map((e) => e.line),
      [4, 5, 6],
    );
    assert.equal(c.urls.added, 2);
    assert.ok(store.hasUrl('http://example.com/c2.jpg?a=1,2'));

    const jsonl = [
      '{"url": "http://example.com/j1.jpg"}',
      '{"url": 5}',
      '{bad json',
      `{"sha256": "${'ef'.repeat(32)}", "note": 1}`,
      '[1]',
      '{"url": "http://example.com/j2.jpg", "sha256": "xyz"}',
    ];
    // No extension: detected from the first line.
    await writeFile(path.join(dir, 'list'), jsonl.join('\n'));
    const j = await importOptoutFile(store, path.join(dir, 'list'));
    assert.equal(j.format, 'jsonl');
    assert.deepEqual(
      j.errors.map((e) => e.line),
      [2, 3, 5, 6],
    );
    assert.deepEqual([j.urls.added, j.images.added], [1, 1]);
    assert.ok(!store.hasUrl('http://example.com/j2.jpg'), 'a line with one bad field is rejected whole');

    await writeFile(path.join(dir, 'nourl.csv'), 'a,b\n1,2\n');
    await assert.rejects(
      importOptoutFile(store, path.join(dir, 'nourl.csv')),
      /nourl\.csv: the CSV header \(a,b\) has no 'url' or 'sha256' column/,
    );
    await assert.rejects(
      importOptoutFile(store, path.join(dir, 'nourl.csv'), { parallel: true }),
      /nourl\.csv: the CSV header \(a,b\) has no 'url' or 'sha256' column/,
    );
    await assert.rejects(importOptoutFile(store, path.join(dir, 'missing.txt')), /missing\.txt/);

    // Two spellings of one URL in one import: the first is kept for display.
    const r2 = await importOptouts(
      store,
      Readable.from(['HTTP://Example.com/dup.jpg#a\nhttp://example.com/dup.jpg\n']),
    );
    assert.deepEqual(r2.urls, { added: 1, already: 1 });
    assert.equal(store.storedUrl('http://example.com/dup.jpg'), 'HTTP://Example.com/dup.jpg#a');

    // A stream of many lines, in several batches.
    const many = Array.from({ length: 5000 }, (_, i) => `https://host${i % 7}.example/img/${i}.jpg`).join('\n');
    const m = await importOptouts(store, Readable.from([many]), { blockChars: 10_000 });
    assert.deepEqual([m.urls.added, m.errorCount, m.lines], [5000, 0, 5000]);
    assert.ok(store.hasUrl(`https://host${4999 % 7}.example/img/4999.jpg`));
    assert.ok(!store.hasUrl(`https://host${(4999 + 1) % 7}.example/img/4999.jpg`));
  } finally {
    index.close();
  }
});

test('the optout commands: add, import, list, remove (exit code 1 when some input was rejected)', async () => {
  const dir = await tmp('cli');
  const dr = ['--data-root', dir];
  const add = await runCli('muse-data', [
    'optout',
    'add',
    'http://example.com/a.jpg',
    'bad url',
    '--sha256',
    'ab'.repeat(32),
    ...dr,
  ]);
  assert.equal(add.code, 1);
  assert.match(add.stdout, /added 1 URL\(s\).*1 image\(s\)/);
  assert.match(add.stderr, /not a valid URL: "bad url"/);
  await writeFile(path.join(dir, 'more.txt'), 'http://example.com/b.jpg\nhttp://[broken/\n');
  const imp = await runCli('muse-data', ['optout', 'import', path.join(dir, 'more.txt'), ...dr]);
  assert.equal(imp.code, 1);
  assert.match(imp.stderr, /more\.txt:2: not a valid URL/);
  const rm = await runCli('muse-data', ['optout', 'remove', 'HTTP://EXAMPLE.COM/a.jpg', ...dr]);
  assert.equal(rm.code, 0, rm.stderr);
  const ls = await runCli('muse-data', ['optout', 'list', ...dr]);
  assert.deepEqual(ls.stdout.trim().split('\n'), ['http://example.com/b.jpg', 'ab'.repeat(32)]);
  const none = await runCli('muse-data', ['optout', 'apply', 'nosuch', ...dr]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /no dataset 'nosuch'/);
});

/** A loopback image server: /img/<n>.jpg is a distinct JPEG per n; records every path requested. */
async function imageServer() {
  const images = new Map<number, Buffer>();
  const jpg = async (n: number) => {
    if (!images.has(n))
      images.set(
        n,
        await sharp({
          create: { width: 80, height: 60, channels: 3, background: { r: (n * 40) % 256, g: 90, b: 200 - n * 10 } },
        })
          .jpeg()
          .toBuffer(),
      );
    return images.get(n)!;
  };
  const paths: string[] = [];
  const server = http.createServer((req, res) => {
    paths.push(req.url ?? '');
    const m = /^\/img\/(\d+)\.jpg$/.exec(req.url ?? '');
    if (!m) return void res.writeHead(404).end();
    void jpg(Number(m[1])).then((b) => res.writeHead(200, { 'content-type': 'image/jpeg' }).end(b));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { origin, paths, jpg, close: () => new Promise<void>((r) => server.close(() => r())) };
}

test('fetch never requests an opted-out URL, drops an opted-out image, and records every row in the index', async () => {
  const server = await imageServer();
  try {
    const dir = await tmp('fetch');
    const dataRoot = path.join(dir, 'root');
    const tsv = path.join(dir, 'in.tsv');
    await writeFile(
      tsv,
      Array.from({ length: 8 }, (_, i) => `${server.origin}/img/${i}.jpg\tcaption number ${i}\n`).join(''),
    );
    // Opted out before the fetch: URL 1 under another spelling, and the image served for URL 5.
    const index = openIndex(dataRoot);
    const store = new OptoutStore(index);
    store.addUrls([`HTTP://127.0.0.1:${new URL(server.origin).port}/img/%31.jpg#frag`]);
    const sha5 = createHash('sha256')
      .update(await server.jpg(5))
      .digest('hex');
    store.addImages([sha5]);
    index.close();

    const cfg = resolvePipeline(
      {
        name: 'optout-test',
        input: {
          files: [tsv],
          format: 'tsv',
          header: false,
          columns: ['url', 'caption'],
          url_col: 'url',
          caption_col: 'caption',
        },
        image: { size: 32 },
        download: { allow_private_network: true, timeout_s: 5, retries: 0 },
        samples_per_shard: 4,
      },
      'optout-test',
    );
    const out = path.join(dir, 'out');
    // Two workers: each records its own shard from its own process.
    const summary = await runFetch({
      cfg,
      datasetDir: out,
      dataRoot,
      projectRoot: root,
      workers: 2,
      logFormat: 'json',
    });
    assert.deepEqual(summary.shards_failed, []);
    assert.ok(!server.paths.includes('/img/1.jpg'), 'the opted-out URL was never requested');
    assert.ok(server.paths.includes('/img/5.jpg'));

    const rows = [
      ...(await readManifest(path.join(out, 'shards', '00000.arrow'))),
      ...(await readManifest(path.join(out, 'shards', '00001.arrow'))),
    ];
    assert.deepEqual(
      rows.map((r) => r.status),
      ['ok', 'opted_out', 'ok', 'ok', 'ok', 'opted_out', 'ok', 'ok'],
    );
    assert.deepEqual([rows[1].reason, rows[5].reason], ['optout_index', 'optout_image']);
    assert.equal(rows[5].sha256, sha5);
    const inTar: string[] = [];
    for (const s of ['00000', '00001'])
      for await (const x of readTarSamples(path.join(out, 'shards', `${s}.tar`))) inTar.push(x.key);
    assert.deepEqual(inTar, ['000000000', '000000002', '000000003', '000010000', '000010002', '000010003']);
    const stats = await readStats(path.join(out, 'shards', '00000_stats.json'));
    assert.equal(stats!.status.opted_out, 1);
    assert.ok('optout_ms' in stats!.timings_ms);

    const idx = openIndex(dataRoot, { readonly: true });
    try {
      assert.deepEqual(
        idx.datasets().map((d) => [d.name, d.path]),
        [['out', out]],
      ); // named after its folder
      assert.equal(
        idx.db.prepare('SELECT count(*) FROM samples').pluck().get(),
        0,
        'fetch no longer writes the samples table',
      );
      const samples = await SampleIndex.open(idx);
      assert.equal(samples.layout.set.shardRuns[0].files.length, 2, 'each shard wrote its index run');
      const s2 = await samples.samplesByUrlHash(urlHash(`${server.origin}/img/2.jpg`));
      assert.deepEqual(
        s2.map((s) => [s.dataset, s.key, s.shard, s.status]),
        [['out', '000000002', 0, 'ok']],
      );
      assert.equal(s2[0].sha256, rows[2].sha256);
      assert.equal(s2[0].phash, rows[2].phash);
      assert.deepEqual(
        (await samples.samplesBySha256(sha5)).map((s) => [s.key, s.status]),
        [['000010001', 'opted_out']],
      );
      assert.deepEqual(
        (await samples.samplesByUrlHash(urlHash(`${server.origin}/img/1.jpg`))).map((s) => s.status),
        ['opted_out'],
      );
      samples.close();
    } finally {
      idx.close();
    }
  } finally {
    await server.close();
  }
});

// ---- apply on the bundled sample ------------------------------------------------------------------------

async function samplePipeline(): Promise<PipelineConfig> {
  const file = path.join(root, 'pipelines', 'sample.yaml');
  return resolvePipeline(deepMerge(await loadPipelineFile(file), { samples_per_shard: 50 }), file);
}

/** Tar members as [name, raw header + data blocks], read with a minimal ustar parser (independent of the code under test). */
function rawMembers(tar: Buffer): { members: Array<[string, Buffer]>; tail: Buffer } {
  const members: Array<[string, Buffer]> = [];
  let pos = 0;
  while (pos + 512 <= tar.length && tar.subarray(pos, pos + 512).some((b) => b !== 0)) {
    const name = tar.toString('utf8', pos, pos + 100).replace(/\0.*$/s, '');
    const size = parseInt(
      tar
        .toString('ascii', pos + 124, pos + 136)
        .replace(/\0.*$/s, '')
        .trim(),
      8,
    );
    const end = pos + 512 + Math.ceil(size / 512) * 512;
    members.push([name, tar.subarray(pos, end)]);
    pos = end;
  }
  return { members, tail: tar.subarray(pos) };
}

const tokenCache = (keys: string[]) => {
  const t = new Table({
    key: vectorFromArray(keys, new Utf8()),
    tokens: vectorFromArray(
      keys.map((_, i) => [i, i + 1]),
      new FixedSizeList(2, new Field('item', new Int16())),
    ),
  });
  return tableToIPC(new Table(new Schema(t.schema.fields, new Map([['vq', 'test']])), t.batches), 'file');
};

interface Fixture {
  dataRoot: string;
  dataset: string;
  /** What apply must remove: key -> reason. */
  expected: Map<string, string>;
  urls: string[];
  sha: string;
}

let fixture: Fixture | undefined;

/** The sample's first two shards (100 rows) fetched once, a token cache for shard 0, opt-outs added. */
async function sampleFixture(): Promise<Fixture> {
  if (fixture) return fixture;
  const dataRoot = await tmp('apply');
  const dataset = path.join(dataRoot, 'sample');
  const summary = await runFetch({
    cfg: await samplePipeline(),
    datasetDir: dataset,
    dataRoot,
    projectRoot: root,
    shards: '0-1',
    workers: 1,
    logFormat: 'json',
  });
  assert.deepEqual(summary.shards_failed, []);
  const rows: ManifestRow[] = [
    ...(await readManifest(path.join(dataset, 'shards', '00000.arrow'))),
    ...(await readManifest(path.join(dataset, 'shards', '00001.arrow'))),
  ];
  const ok = rows.filter((r) => r.status === 'ok');
  const fallback = rows.find((r) => r.status === 'fallback')!;
  const filtered = rows.find((r) => r.status === 'filtered')!;
  // By URL: two ok samples of shard 0, one of shard 1, a fallback, and a filtered row (not in the tar: untouched).
  const byUrl = [ok[0], ok[3], ok.find((r) => r.key.startsWith('00001'))!, fallback];
  const byImage = ok[5];
  const expected = new Map<string, string>([
    ...byUrl.map((r) => [r.key, 'optout_index'] as [string, string]),
    [byImage.key, 'optout_image'],
  ]);
  const inTar0: string[] = [];
  for await (const s of readTarSamples(path.join(dataset, 'shards', '00000.tar'))) inTar0.push(s.key);
  await mkdir(path.join(dataset, 'tokens', 'vq-test'), { recursive: true });
  await writeFile(path.join(dataset, 'tokens', 'vq-test', '00000.arrow'), tokenCache(inTar0));

  const index = openIndex(dataRoot);
  const store = new OptoutStore(index);
  // The index holds the URLs as the input had them (before the sample server's rewrite).
  store.addUrls([...byUrl, filtered].map((r) => r.url.replace('http://sample.invalid/', 'HTTP://SAMPLE.invalid:80/')));
  store.addImages([byImage.sha256!]);
  index.close();
  fixture = { dataRoot, dataset, expected, urls: byUrl.map((r) => r.url), sha: byImage.sha256! };
  return fixture;
}

/** A fresh copy of the fixture's data root (the index's dataset path updated to the copy). */
const copyFixture = (f: Fixture) => copyDataRoot(f.dataRoot, 'optout-copy');

async function assertApplied(f: Fixture, dataRoot: string, dataset: string) {
  for (const shard of ['00000', '00001']) {
    const before = rawMembers(await readFile(path.join(f.dataset, 'shards', `${shard}.tar`)));
    const after = rawMembers(await readFile(path.join(dataset, 'shards', `${shard}.tar`)));
    const keyOf = (name: string) => name.slice(0, name.indexOf('.'));
    assert.deepEqual(
      after.members,
      before.members.filter(([n]) => !f.expected.has(keyOf(n))),
      `shard ${shard}: other members byte-identical`,
    );
    assert.deepEqual(after.tail, before.tail);

    const rowsBefore = await readManifest(path.join(f.dataset, 'shards', `${shard}.arrow`));
    const rowsAfter = await readManifest(path.join(dataset, 'shards', `${shard}.arrow`));
    assert.equal(rowsAfter.length, rowsBefore.length);
    for (let i = 0; i < rowsAfter.length; i++) {
      const reason = f.expected.get(rowsBefore[i].key);
      if (reason)
        assert.deepEqual(
          [rowsAfter[i].status, rowsAfter[i].reason, rowsAfter[i].url],
          ['opted_out', reason, rowsBefore[i].url],
        );
      else assert.deepEqual(rowsAfter[i], rowsBefore[i]);
    }
    const stats = (await readStats(path.join(dataset, 'shards', `${shard}_stats.json`)))!;
    assert.equal(stats.status.opted_out, rowsAfter.filter((r) => r.status === 'opted_out').length);
    assert.equal(stats.written, rowsAfter.filter((r) => r.status === 'ok' || r.status === 'fallback').length);
  }
  const cache = tableFromIPC(await readFile(path.join(dataset, 'tokens', 'vq-test', '00000.arrow')));
  const cacheBefore = tableFromIPC(await readFile(path.join(f.dataset, 'tokens', 'vq-test', '00000.arrow')));
  assert.deepEqual(
    cache.toArray().map((r) => [r.key, [...r.tokens]]),
    cacheBefore
      .toArray()
      .filter((r) => !f.expected.has(r.key))
      .map((r) => [r.key, [...r.tokens]]),
  );
  assert.equal(cache.schema.metadata.get('vq'), 'test');
  assert.deepEqual(await pendingRewrites(dataset), []);
  const leftovers = (await readdir(path.join(dataset, 'shards'))).filter((n) => n.endsWith('.tmp'));
  assert.deepEqual(leftovers, []);
  const index = openIndex(dataRoot, { readonly: true });
  try {
    // The shard runs follow the rewritten manifests; nothing is left pending.
    const samples = await SampleIndex.open(index);
    try {
      for (const d of index.datasets()) assert.deepEqual(await samples.optedOutSamples(d.id), []);
      for (const key of f.expected.keys()) {
        const row = (await readManifest(path.join(dataset, 'shards', `${key.slice(0, 5)}.arrow`))).find(
          (r) => r.key === key,
        )!;
        assert.deepEqual(
          (await samples.samplesByUrlHash(urlHash(row.url))).map((s) => s.status),
          ['opted_out'],
          `index status of ${key}`,
        );
      }
    } finally {
      samples.close();
    }
  } finally {
    index.close();
  }
}

test('apply: opted-out samples leave tar, manifest, stats, token cache and index; the rest is byte-identical; check shows them', async () => {
  const f = await sampleFixture();
  const { dataRoot, dataset } = await copyFixture(f);
  const index = openIndex(dataRoot);
  try {
    const lines: string[] = [];
    const res = await applyOptouts(index, index.datasets(), { log: (l) => lines.push(l) });
    assert.equal(res[0].removed, f.expected.size);
    assert.equal(res[0].cacheFilesRewritten, 1);
    assert.deepEqual(lines.map((l) => l.split(' ')[1]).sort(), [...f.expected.keys()].sort());
    await assertApplied(f, dataRoot, dataset);
    // Idempotent: nothing left to do, nothing written.
    const again = await applyOptouts(index, index.datasets());
    assert.deepEqual([again[0].removed, again[0].shardsRewritten], [0, 0]);
  } finally {
    index.close();
  }
  await assertApplied(f, dataRoot, dataset);

  const r = await runCli('muse-data', [
    'optout',
    'check',
    f.urls[0],
    'http://sample.invalid/img/99999.jpg',
    '--sha256',
    f.sha,
    '--data-root',
    dataRoot,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const key0 = [...f.expected.keys()][0];
  const shaKey = [...f.expected].find(([, why]) => why === 'optout_image')![0];
  assert.deepEqual(r.stdout.trim().split('\n'), [
    `${f.urls[0]}: opted out (as ${f.urls[0].replace('http://sample.invalid/', 'HTTP://SAMPLE.invalid:80/')})`,
    `sample ${key0} ${Number(key0.slice(0, 5))} opted_out`,
    'http://sample.invalid/img/99999.jpg: not opted out',
    `${f.sha}: opted out`,
    `sample ${shaKey} ${Number(shaKey.slice(0, 5))} opted_out`,
  ]);
});

test('apply killed at random moments, then rerun, gives the same result as an uninterrupted apply', async (t) => {
  const f = await sampleFixture();
  let killedMidway = 0;
  let journalsLeft = 0;
  for (let round = 0; round < 4; round++) {
    const { dataRoot, dataset } = await copyFixture(f);
    // Kill a random time after apply announced a shard's rewrite: inside shard 0's or shard 1's rewrite, between
    // them, or (rarely) after apply finished, which must be fine too.
    const shard = round % 2;
    const delay = Math.floor(Math.random() * 30);
    let armed = false;
    const first = await runCli('muse-data', ['optout', 'apply', '--data-root', dataRoot], {
      onStderr: (text, kill) => {
        if (!armed && text.includes(`shard ${shard}:`)) {
          armed = true;
          setTimeout(kill, delay);
        }
      },
    });
    if (first.signal === 'SIGKILL') killedMidway++;
    journalsLeft += (await pendingRewrites(dataset)).length;
    const second = await runCli('muse-data', ['optout', 'apply', '--data-root', dataRoot]);
    assert.equal(second.code, 0, second.stderr);
    await assertApplied(f, dataRoot, dataset);
    assert.ok(existsSync(path.join(dataset, 'shards', '00000_stats.json')));
  }
  assert.ok(killedMidway > 0, 'at least one run was killed before it finished');
  t.diagnostic(`${killedMidway} of 4 runs killed before they finished, ${journalsLeft} inside a shard rewrite`);
});
