import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { SafetensorsFile, openCheckpoint, saveSafetensors, loadSafetensors } from '../../src/models/safetensors.ts';
import { decodeFloat16, encodeBFloat16, encodeFloat16, decodeBFloat16 } from '../../src/runtime/float16.ts';
import { initBackend } from '../../src/runtime/backend.ts';
import { fixturePath } from '../helpers/fixtures.ts';

const fixtures = fixturePath('open-muse');

async function tmpDir(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), 'muse-st-'));
}

test('reads the open-muse fixture lazily with names, dtypes, shapes and metadata', async () => {
  const f = await SafetensorsFile.open(path.join(fixtures, 'vqgan_expected.safetensors'));
  try {
    assert.ok(f.names().includes('pixel_values'));
    assert.deepEqual(f.info('token_indices'), { dtype: 'I32', shape: [2, 64] });
    assert.deepEqual(f.info('pixel_values'), { dtype: 'F32', shape: [2, 3, 64, 64] });
    assert.match(f.metadata().source, /open-muse@64e1afe/);
    const ids = await f.read('token_indices');
    assert.ok(ids.data instanceof Int32Array);
    assert.deepEqual([...ids.data.slice(0, 5)], [85, 109, 115, 3, 85]);
    const px = await f.read('pixel_values');
    assert.ok(px.data instanceof Float32Array && px.data.length === 2 * 3 * 64 * 64);
    assert.ok(px.data.every((v) => v >= 0 && v <= 1));
    await assert.rejects(f.read('nope'), /no tensor named 'nope'/);
  } finally {
    await f.close();
  }
  const m = await SafetensorsFile.open(path.join(fixtures, 'transformer_rms_expected.safetensors'));
  const mask = await m.read('mask');
  assert.equal(mask.dtype, 'U8');
  assert.ok(mask.data instanceof Uint8Array);
  assert.equal(
    mask.data.reduce((a, b) => a + b, 0),
    32 + 16,
  );
  await m.close();
});

test('float16 / bfloat16 encoding rounds to nearest even and handles the edges', () => {
  const values = new Float32Array([
    1,
    -2,
    65504,
    65520,
    1e-8,
    2 ** -24,
    1 + 2 ** -11,
    1 + 3 * 2 ** -11,
    Infinity,
    NaN,
    0.1,
  ]);
  const bits = [...encodeFloat16(values)];
  assert.deepEqual(bits.slice(0, 9), [0x3c00, 0xc000, 0x7bff, 0x7c00, 0, 1, 0x3c00, 0x3c02, 0x7c00]);
  assert.equal(bits[9] & 0x7c00, 0x7c00);
  assert.ok(bits[9] & 0x3ff);
  assert.equal(bits[10], 0x2e66); // 0.1 in half precision
  const back = decodeFloat16(new Uint16Array(bits));
  assert.equal(back[0], 1);
  assert.equal(back[5], 2 ** -24);
  assert.ok(Number.isNaN(back[9]));
  assert.ok(Math.abs(back[10] - 0.1) < 1e-4);
  const bf = encodeBFloat16(new Float32Array([1, -3.5, 1 + 2 ** -8, 1 + 3 * 2 ** -8]));
  assert.deepEqual([...bf], [0x3f80, 0xc060, 0x3f80, 0x3f82]);
  assert.deepEqual([...decodeBFloat16(bf)], [1, -3.5, 1, 1 + 2 ** -6]);
});

test('round-trips every dtype, sorted and 8-byte aligned, atomically', async () => {
  await initBackend('cpu', { quiet: true });
  const dir = await tmpDir();
  try {
    const file = path.join(dir, 'all.safetensors');
    await saveSafetensors(
      file,
      {
        'z.f32': { dtype: 'F32', shape: [2, 2], data: new Float32Array([1.5, -2, 3.25, 1e-3]) },
        'a.f16': { dtype: 'F16', shape: [3], data: new Float32Array([0.5, -1, 1e-3]) },
        'b.bf16': { dtype: 'BF16', shape: [2], data: new Float32Array([2, -0.75]) },
        'c.i64': { dtype: 'I64', shape: [3], data: new Int32Array([-5, 2 ** 31 - 1, -(2 ** 31)]) },
        'd.i32': { dtype: 'I32', shape: [2], data: new Int32Array([7, -7]) },
        'e.u8': { dtype: 'U8', shape: [3], data: new Uint8Array([0, 1, 255]) },
        'f.tensor': tf.tensor2d([[1, 2, 3]], [1, 3]),
        'g.int': tf.tensor1d([4, 5], 'int32'),
        'h.bool': tf.tensor1d([true, false], 'bool'),
        'i.empty': { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
      },
      { note: 'hi' },
    );
    assert.deepEqual(await readdir(dir), ['all.safetensors']); // no temporary left behind
    const raw = await readFile(file);
    const n = Number(raw.readBigUInt64LE(0));
    assert.equal(n % 8, 0);
    const header = JSON.parse(raw.subarray(8, 8 + n).toString());
    const names = Object.keys(header).filter((k) => k !== '__metadata__');
    assert.deepEqual(names, [...names].sort());
    let end = 0;
    for (const k of names) {
      assert.equal(header[k].data_offsets[0], end, `tensor ${k} follows the previous one`);
      end = header[k].data_offsets[1];
    }
    assert.equal(raw.length, 8 + n + end);

    const all = await loadSafetensors(file);
    assert.deepEqual([...all['z.f32'].data], [1.5, -2, 3.25, Math.fround(1e-3)]);
    assert.equal(all['a.f16'].dtype, 'F16');
    assert.deepEqual([...all['a.f16'].data.slice(0, 2)], [0.5, -1]);
    assert.ok(Math.abs(all['a.f16'].data[2] - 1e-3) < 1e-6);
    assert.deepEqual([...all['b.bf16'].data], [2, -0.75]);
    assert.equal(all['c.i64'].dtype, 'I64');
    assert.deepEqual([...all['c.i64'].data], [-5, 2 ** 31 - 1, -(2 ** 31)]);
    assert.deepEqual([...all['d.i32'].data], [7, -7]);
    assert.deepEqual([...all['e.u8'].data], [0, 1, 255]);
    assert.deepEqual(all['f.tensor'], { dtype: 'F32', shape: [1, 3], data: new Float32Array([1, 2, 3]) });
    assert.deepEqual(all['g.int'].dtype, 'I32');
    assert.deepEqual([...all['h.bool'].data], [1, 0]);
    assert.deepEqual(all['i.empty'].shape, [0, 4]);

    const f = await SafetensorsFile.open(file);
    assert.deepEqual(f.metadata(), { note: 'hi' });
    const t = await f.tensor('c.i64');
    assert.equal(t.dtype, 'int32');
    assert.deepEqual(await t.data(), new Int32Array([-5, 2 ** 31 - 1, -(2 ** 31)]));
    const b = await f.tensor('h.bool');
    assert.equal(b.dtype, 'bool');
    await f.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('float tensors can be stored as F16; I64 beyond int32 is an error naming the tensor', async () => {
  await initBackend('cpu', { quiet: true });
  const dir = await tmpDir();
  try {
    const file = path.join(dir, 'h.safetensors');
    await saveSafetensors(file, { w: tf.tensor1d([0.1, 1000, -3]), ids: tf.tensor1d([1, 2], 'int32') }, undefined, {
      dtype: 'F16',
    });
    const f = await SafetensorsFile.open(file);
    assert.equal(f.info('w').dtype, 'F16');
    assert.equal(f.info('ids').dtype, 'I32');
    const w = await f.read('w');
    assert.ok(Math.abs(w.data[0] - 0.1) < 1e-4 && w.data[1] === 1000 && w.data[2] === -3);
    await f.close();

    // Hand-write an I64 tensor holding 2^40.
    const big = path.join(dir, 'big.safetensors');
    const header = Buffer.from(
      JSON.stringify({ huge: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }).padEnd(64, ' '),
    );
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    const data = Buffer.alloc(8);
    data.writeBigInt64LE(2n ** 40n);
    await writeFile(big, Buffer.concat([len, header, data]));
    const g = await SafetensorsFile.open(big);
    await assert.rejects(g.read('huge'), /'huge'.*int32/);
    await g.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('truncated files and bad headers give errors naming the file', async () => {
  const dir = await tmpDir();
  try {
    const good = path.join(dir, 'good.safetensors');
    await saveSafetensors(good, { a: { dtype: 'F32', shape: [16], data: new Float32Array(16) } });
    const bytes = await readFile(good);
    const cut = path.join(dir, 'cut.safetensors');
    await writeFile(cut, bytes.subarray(0, bytes.length - 4));
    await assert.rejects(
      SafetensorsFile.open(cut),
      (e: Error) => e.message.includes(cut) && /truncated/.test(e.message),
    );
    const tiny = path.join(dir, 'tiny.safetensors');
    await writeFile(tiny, bytes.subarray(0, 20));
    await assert.rejects(
      SafetensorsFile.open(tiny),
      (e: Error) => e.message.includes(tiny) && /truncated/.test(e.message),
    );
    const garbage = path.join(dir, 'garbage.safetensors');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(8n);
    await writeFile(garbage, Buffer.concat([len, Buffer.from('{"a":1,x')]));
    await assert.rejects(
      SafetensorsFile.open(garbage),
      (e: Error) => e.message.includes(garbage) && /bad safetensors header/.test(e.message),
    );
    const huge = path.join(dir, 'huge.safetensors');
    await writeFile(huge, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x7b]));
    await assert.rejects(
      SafetensorsFile.open(huge),
      (e: Error) => e.message.includes(huge) && /header length/.test(e.message),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('openCheckpoint reads a directory, model.safetensors and a sharded index', async () => {
  const dir = await tmpDir();
  try {
    await saveSafetensors(path.join(dir, 'model-00001-of-00002.safetensors'), {
      'enc.w': { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) },
    });
    await saveSafetensors(path.join(dir, 'model-00002-of-00002.safetensors'), {
      'dec.w': { dtype: 'I32', shape: [1], data: new Int32Array([9]) },
    });
    await writeFile(
      path.join(dir, 'model.safetensors.index.json'),
      JSON.stringify({
        metadata: { total_size: 12 },
        weight_map: { 'enc.w': 'model-00001-of-00002.safetensors', 'dec.w': 'model-00002-of-00002.safetensors' },
      }),
    );
    const ck = await openCheckpoint(dir);
    assert.deepEqual(ck.names().sort(), ['dec.w', 'enc.w']);
    assert.deepEqual(ck.info('dec.w'), { dtype: 'I32', shape: [1] });
    assert.deepEqual([...(await ck.read('enc.w')).data], [1, 2]);
    assert.deepEqual([...(await ck.read('dec.w')).data], [9]);
    assert.equal(ck.metadata().total_size, '12');
    await assert.rejects(ck.read('missing'), /missing/);
    await ck.close();

    const single = path.join(dir, 'single');
    await saveSafetensors(path.join(single, 'model.safetensors'), {
      x: { dtype: 'U8', shape: [1], data: new Uint8Array([3]) },
    });
    const s = await openCheckpoint(single);
    assert.deepEqual([...(await s.read('x')).data], [3]);
    await s.close();
    await assert.rejects(openCheckpoint(path.join(dir, 'absent')), /absent/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
