import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import {
  sampleCatalog,
  sampleCaption,
  HELD_OUT_COMBINATIONS,
  SPECIAL_ROWS,
  SAMPLE_URL_PREFIX,
  COLOR_NAMES,
  SHAPE_NAMES,
  isHeldOut,
  type SampleItem,
} from '../../src/sample-data/catalog.ts';
import { nearestColor } from '../../src/sample-data/palette.ts';
import { renderSampleImage } from '../../src/sample-data/render.ts';
import { startSampleServer } from '../../src/sample-data/server.ts';

const catalog = sampleCatalog();
const ok = catalog.filter((it) => it.expected === 'ok');
const byKind = (kind: SampleItem['kind']) => catalog.filter((it) => it.kind === kind);

test('catalog is deterministic and about 300 rows in row order', () => {
  assert.deepEqual(sampleCatalog(), catalog);
  assert.equal(catalog.length, 300);
  catalog.forEach((it, i) => assert.equal(it.row, i));
  assert.equal(new Set(catalog.map((it) => it.url)).size, catalog.length);
  assert.equal(new Set(catalog.map((it) => it.sampleId)).size, catalog.length);
});

test('every colour and shape is trained on, every allowed combination several times', () => {
  for (const c of COLOR_NAMES) {
    assert.ok(
      ok.some((it) => it.color === c),
      `shape colour ${c}`,
    );
    assert.ok(
      ok.some((it) => it.background === c),
      `background ${c}`,
    );
  }
  for (const s of SHAPE_NAMES)
    assert.ok(
      ok.some((it) => it.shape === s),
      `shape ${s}`,
    );
  for (const c of COLOR_NAMES)
    for (const s of SHAPE_NAMES) {
      if (isHeldOut(c, s)) continue;
      const n = ok.filter((it) => it.color === c && it.shape === s).length;
      assert.ok(n >= 3, `${c} ${s} appears ${n} times`);
    }
});

test('held-out combinations appear in no row and no caption', () => {
  assert.ok(HELD_OUT_COMBINATIONS.length >= 3);
  for (const { color, shape } of HELD_OUT_COMBINATIONS) {
    assert.ok(!catalog.some((it) => it.color === color && it.shape === shape), `${color} ${shape}`);
    assert.ok(!catalog.some((it) => it.caption.startsWith(`a ${color} ${shape} `)), `caption ${color} ${shape}`);
  }
});

test('captions follow the one template; shape colour differs from background', () => {
  for (const it of catalog) {
    assert.notEqual(it.color, it.background);
    if (it.kind === 'short_caption') assert.equal(it.caption, 'a');
    else assert.equal(it.caption, sampleCaption(it.color, it.shape, it.background));
  }
});

test('special rows: the documented rows, kinds and expected outcomes (datasets/sample/README.md)', () => {
  const documented: Array<[number, SampleItem['kind'], SampleItem['expected']]> = [
    [17, 'dead_404', 'failed'],
    [43, 'noai_header', 'opted_out'],
    [71, 'short_caption', 'filtered'],
    [98, 'corrupt_jpeg', 'failed'],
    [124, 'dead_500', 'failed'],
    [151, 'decompression_bomb', 'filtered'],
    [177, 'tiny_image', 'filtered'],
    [203, 'html_as_jpeg', 'failed'],
    [229, 'nsfw_tag', 'filtered'],
    [256, 'dead_404', 'failed'],
    [283, 'corrupt_similarity', 'filtered'],
  ];
  const special = catalog.filter((it) => it.kind !== 'ok');
  assert.deepEqual(
    special.map((it) => [it.row, it.kind, it.expected]),
    documented,
  );
  assert.deepEqual(
    [...SPECIAL_ROWS],
    documented.map(([row, kind]) => [row, kind]),
  );
  assert.ok(ok.every((it) => it.kind === 'ok'));
  assert.equal(catalog.filter((it) => it.nsfw === 'NSFW').length, 1);
  assert.equal(catalog.filter((it) => it.similarity > 1).length, 1);
});

test('sizes, formats and shape placement are varied but sane', () => {
  for (const it of ok) {
    assert.ok(it.width >= 320 && it.width <= 640 && it.height >= 320 && it.height <= 640, `row ${it.row}`);
    assert.ok(Math.max(it.width, it.height) / Math.min(it.width, it.height) <= 2);
    assert.ok(it.cx - it.size > 0 && it.cx + it.size < it.width, `row ${it.row} x`);
    assert.ok(it.cy - it.size > 0 && it.cy + it.size < it.height, `row ${it.row} y`);
    // Near the centre (the demo's transformer needs it) and whole inside the square centre crop the pipeline takes.
    const side = Math.min(it.width, it.height);
    for (const [c, len] of [
      [it.cx, it.width],
      [it.cy, it.height],
    ]) {
      assert.ok(Math.abs(c - Math.floor(len / 2)) <= Math.round(side * 0.05), `row ${it.row}: centre ${c} of ${len}`);
      const lo = (len - side) / 2;
      assert.ok(c - it.size > lo && c + it.size < lo + side, `row ${it.row}: shape leaves the centre crop`);
    }
    assert.ok(it.similarity >= 0.28 && it.similarity <= 0.4);
    assert.equal(it.url, `${SAMPLE_URL_PREFIX}img/${it.row}.${it.format}`);
  }
  for (const fmt of ['jpg', 'png', 'webp'])
    assert.ok(
      ok.some((it) => it.format === fmt),
      fmt,
    );
  assert.ok(ok.filter((it) => it.format === 'jpg').length > ok.length / 2, 'mostly JPEG');
  assert.ok(ok.some((it) => it.width !== it.height));
  assert.ok(ok.some((it) => it.centered) && ok.some((it) => !it.centered));
});

test('rendering is deterministic', async () => {
  const it = ok.find((x) => x.format === 'webp')!;
  const [a, b] = await Promise.all([renderSampleImage(it), renderSampleImage(structuredClone(it))]);
  assert.ok(a.body.equals(b.body));
});

async function pixelColors(body: Buffer, points: Array<[number, number]>) {
  const { data, info } = await sharp(body).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const colors = points.map(([x, y]) => {
    const o = (y * info.width + x) * info.channels;
    return nearestColor([data[o], data[o + 1], data[o + 2]]);
  });
  return { info, colors };
}

test('sample server', async (t) => {
  const server = await startSampleServer();
  t.after(() => server.close());
  assert.match(server.origin, /^http:\/\/127\.0\.0\.1:\d+$/);
  const get = (it: SampleItem | string) => fetch(server.origin + (typeof it === 'string' ? it : it.path));

  await t.test('serves a centred JPEG: right size, shape colour at the centre, background at the corners', async () => {
    const it = ok.find((x) => x.format === 'jpg' && x.centered && x.width !== x.height)!;
    const res = await get(it);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'image/jpeg');
    const body = Buffer.from(await res.arrayBuffer());
    assert.equal(Number(res.headers.get('content-length')), body.length);
    const w = it.width;
    const h = it.height;
    const { info, colors } = await pixelColors(body, [
      [w >> 1, h >> 1],
      [2, 2],
      [w - 3, h - 3],
    ]);
    assert.equal(info.width, w);
    assert.equal(info.height, h);
    assert.deepEqual(colors, [it.color, it.background, it.background]);
  });

  await t.test('serves PNG and WebP rows as such', async () => {
    for (const fmt of ['png', 'webp'] as const) {
      const it = ok.find((x) => x.format === fmt && !x.centered)!;
      const res = await get(it);
      assert.equal(res.headers.get('content-type'), `image/${fmt}`);
      const body = Buffer.from(await res.arrayBuffer());
      const { info, colors } = await pixelColors(body, [
        [it.cx, it.cy],
        [1, it.height - 2],
      ]);
      assert.equal((await sharp(body).metadata()).format, fmt);
      assert.deepEqual([info.width, info.height], [it.width, it.height]);
      assert.deepEqual(colors, [it.color, it.background]);
    }
  });

  await t.test('dead rows answer 404 and 500; unknown paths and wrong extensions 404', async () => {
    for (const it of byKind('dead_404')) assert.equal((await get(it)).status, 404);
    for (const it of byKind('dead_500')) assert.equal((await get(it)).status, 500);
    const it = ok.find((x) => x.format === 'jpg')!;
    assert.equal((await get(`/img/${it.row}.png`)).status, 404);
    assert.equal((await get(`/img/0${it.row}.jpg`)).status, 404);
    assert.equal((await get('/img/300.jpg')).status, 404);
    assert.equal((await get('/')).status, 404);
  });

  await t.test('noai row carries X-Robots-Tag; other rows do not', async () => {
    const [noai] = byKind('noai_header');
    const res = await get(noai);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-robots-tag'), 'noai');
    await res.arrayBuffer();
    const plain = await get(ok[0]);
    assert.equal(plain.headers.get('x-robots-tag'), null);
    await plain.arrayBuffer();
  });

  await t.test('bomb PNG: small file whose header claims 30000x30000', async () => {
    const [bomb] = byKind('decompression_bomb');
    const res = await get(bomb);
    assert.equal(res.headers.get('content-type'), 'image/png');
    const body = Buffer.from(await res.arrayBuffer());
    assert.ok(body.length < 4096, `${body.length} bytes`);
    const meta = await sharp(body, { limitInputPixels: false }).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['png', 30000, 30000]);
    await assert.rejects(sharp(body).raw().toBuffer()); // default pixel limit refuses it
  });

  await t.test('corrupt JPEG and HTML-as-JPEG do not decode', async () => {
    const [corrupt] = byKind('corrupt_jpeg');
    const c = await get(corrupt);
    assert.equal(c.headers.get('content-type'), 'image/jpeg');
    await assert.rejects(
      sharp(Buffer.from(await c.arrayBuffer()))
        .raw()
        .toBuffer(),
    );
    const [html] = byKind('html_as_jpeg');
    const h = await get(html);
    assert.equal(h.status, 200);
    assert.equal(h.headers.get('content-type'), 'image/jpeg');
    const body = Buffer.from(await h.arrayBuffer());
    assert.match(body.toString('utf8'), /^<!DOCTYPE html>/);
    await assert.rejects(sharp(body).metadata());
  });

  await t.test('tiny row is 40x40', async () => {
    const [tiny] = byKind('tiny_image');
    const meta = await sharp(Buffer.from(await (await get(tiny)).arrayBuffer())).metadata();
    assert.deepEqual([meta.width, meta.height], [40, 40]);
  });

  await t.test('counts requests', async () => {
    const before = server.requestCount();
    await (await get('/nothing')).arrayBuffer();
    assert.equal(server.requestCount(), before + 1);
  });
});

test('committed parquet matches the catalog (LAION-400M layout)', async () => {
  const file = readFileSync(new URL('../../datasets/sample/sample.parquet', import.meta.url));
  const ab = file.buffer.slice(file.byteOffset, file.byteOffset + file.byteLength);
  const meta = parquetMetadata(ab);
  assert.deepEqual(
    meta.schema.slice(1).map((s) => [s.name, s.type]),
    [
      ['SAMPLE_ID', 'INT64'],
      ['URL', 'BYTE_ARRAY'],
      ['TEXT', 'BYTE_ARRAY'],
      ['HEIGHT', 'INT32'],
      ['WIDTH', 'INT32'],
      ['LICENSE', 'BYTE_ARRAY'],
      ['NSFW', 'BYTE_ARRAY'],
      ['similarity', 'DOUBLE'],
    ],
  );
  assert.ok(meta.row_groups.length >= 2 && meta.row_groups.length <= 3);
  assert.ok(meta.row_groups.every((rg) => rg.columns.every((c) => c.meta_data?.codec === 'SNAPPY')));

  const rows = await parquetReadObjects({ file: ab });
  assert.equal(rows.length, catalog.length);
  rows.forEach((r, i) => {
    const it = catalog[i];
    assert.deepEqual(
      [r.SAMPLE_ID, r.URL, r.TEXT, r.HEIGHT, r.WIDTH, r.LICENSE, r.NSFW, r.similarity],
      [BigInt(it.sampleId), it.url, it.caption, it.height, it.width, '?', it.nsfw, it.similarity],
      `row ${i}`,
    );
  });
});
