import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { lossCurveSpec, renderLossCurve } from '../../src/train/core/loss-curve.ts';

const records = Array.from({ length: 40 }, (_, i) => ({
  step: i + 1,
  loss: 5 * Math.exp(-i / 10) + 0.1 * Math.sin(i),
  ...(i % 10 === 9 ? { val_loss: 4 * Math.exp(-i / 12) } : {}),
}));

test('renderLossCurve writes a PNG of the expected size that changes with the data', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'train-core-curve-'));
  const a = path.join(dir, 'a.png');
  await renderLossCurve(records, a, { title: 'MUSE loss', series: ['loss', 'val_loss'], smooth: 0.6, logY: true });
  const meta = await sharp(a).metadata();
  assert.equal(meta.format, 'png');
  assert.ok(meta.width! >= 640 && meta.width! <= 900, `width ${meta.width}`);
  assert.ok(meta.height! >= 360 && meta.height! <= 520, `height ${meta.height}`);
  const stats = await sharp(a).stats();
  assert.ok(stats.channels[0].min < 128, 'something dark (lines, text) is drawn on the white background');
  const b = path.join(dir, 'b.png');
  await renderLossCurve(
    records.map((r) => ({ ...r, loss: r.loss * 3 })),
    b,
    { title: 'MUSE loss', series: ['loss', 'val_loss'], smooth: 0.6, logY: true },
  );
  assert.notDeepEqual(await readFile(a), await readFile(b));
});

test('spec: records missing a field are skipped per series; smoothing is an EMA; bad input is named', async () => {
  const spec = lossCurveSpec(records, { title: 't', series: ['loss', 'val_loss'], smooth: 0.5 }) as unknown as {
    data: { values: Array<{ x: number; y: number; series: string; kind: string }> };
  };
  const v = spec.data.values;
  assert.equal(v.filter((p) => p.series === 'val_loss' && p.kind === 'raw').length, 4);
  assert.equal(v.filter((p) => p.series === 'loss' && p.kind === 'raw').length, 40);
  const sm = v.filter((p) => p.series === 'loss' && p.kind === 'smoothed').map((p) => p.y);
  assert.equal(sm[0], records[0].loss);
  assert.ok(Math.abs(sm[1] - (0.5 * records[0].loss + 0.5 * records[1].loss)) < 1e-12);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'train-core-curve-'));
  await assert.rejects(renderLossCurve([], path.join(dir, 'x.png'), { title: 't', series: ['loss'] }), /no records/);
  await assert.rejects(
    renderLossCurve([{ step: 1 }], path.join(dir, 'x.png'), { title: 't', series: ['loss'] }),
    /none of 1 records has a numeric 'step' together with 'loss'/,
  );
  assert.throws(() => lossCurveSpec(records, { title: 't', series: ['loss'], smooth: 1 }), /smooth/);
});
