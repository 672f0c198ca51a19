import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { sampleCatalog, type SampleItem } from '../../src/sample-data/catalog.ts';
import { COLOR_NAMES, COLORS, SHAPE_NAMES } from '../../src/sample-data/palette.ts';
import { sampleSvg } from '../../src/sample-data/render.ts';
import { checkImage, checkPng } from '../../src/demo/checker.ts';

/** The picture of `item`, square-cropped around the image centre and resized to `res` (as tokenize would see it). */
async function render(item: SampleItem, res: number): Promise<Buffer> {
  const side = Math.min(item.width, item.height);
  const left = Math.floor((item.width - side) / 2);
  const top = Math.floor((item.height - side) / 2);
  return sharp(Buffer.from(sampleSvg(item)))
    .removeAlpha()
    .extract({ left, top, width: side, height: side })
    .resize(res, res)
    .png()
    .toBuffer();
}

function insideCrop(item: SampleItem): boolean {
  const side = Math.min(item.width, item.height);
  const x0 = Math.floor((item.width - side) / 2);
  const y0 = Math.floor((item.height - side) / 2);
  return (
    item.cx - item.size >= x0 &&
    item.cx + item.size <= x0 + side &&
    item.cy - item.size >= y0 &&
    item.cy + item.size <= y0 + side
  );
}

/** Every (colour, shape, background) triple, held-out ones included, at varied sizes (half-extent 18-40% of the side) and positions. */
function allTriples(): SampleItem[] {
  const base = sampleCatalog()[0];
  const out: SampleItem[] = [];
  let k = 0;
  for (const color of COLOR_NAMES)
    for (const shape of SHAPE_NAMES)
      for (const background of COLOR_NAMES) {
        if (background === color) continue;
        const size = Math.round(400 * (0.18 + (0.22 * ((k * 37) % 100)) / 100));
        const margin = 24;
        const span = 400 - 2 * (size + margin);
        const cx = size + margin + ((k * 53) % (span + 1));
        const cy = size + margin + ((k * 71) % (span + 1));
        out.push({ ...base, color, shape, background, width: 400, height: 400, cx, cy, size });
        k++;
      }
  return out;
}

test('checker: colours exact and shape accuracy on catalog items and all triples, at 128 px and 32 px', async () => {
  const items = [...sampleCatalog().filter((i) => i.kind === 'ok' && insideCrop(i)), ...allTriples()];
  assert.ok(items.length > 450);
  for (const res of [128, 32]) {
    let shapeRight = 0;
    const wrong: string[] = [];
    for (const item of items) {
      const r = await checkPng(await render(item, res));
      assert.equal(r.background, item.background, `${res}px row ${item.row} ${item.caption}`);
      assert.equal(r.shapeColor, item.color, `${res}px ${item.color} ${item.shape} on ${item.background}`);
      // A catalog circle of half-extent 44% of the side covers pi * 0.44^2 = 61% of a square picture.
      assert.ok(
        r.shapeFraction > 0.02 && r.shapeFraction < 0.65,
        `${res}px ${item.shape}: shape fraction ${r.shapeFraction}`,
      );
      if (r.shape === item.shape) shapeRight++;
      else wrong.push(`${item.shape}->${r.shape}`);
    }
    const acc = shapeRight / items.length;
    console.log(
      `checker shape accuracy at ${res}px: ${(acc * 100).toFixed(1)}% of ${items.length}${wrong.length ? ` (${wrong.slice(0, 5).join(', ')})` : ''}`,
    );
    assert.ok(acc >= 0.95, `shape accuracy ${acc} at ${res}px`);
  }
});

test('checker: blurred and JPEG-compressed 32 px images keep exact colours', async () => {
  const items = allTriples().filter((_, i) => i % 3 === 0);
  let shapeRight = 0;
  for (const item of items) {
    const small = await render(item, 32);
    const degraded = await sharp(await sharp(small).blur(1.2).png().toBuffer())
      .jpeg({ quality: 75 })
      .toBuffer();
    const r = await checkPng(degraded);
    assert.equal(r.background, item.background);
    assert.equal(r.shapeColor, item.color);
    if (r.shape === item.shape) shapeRight++;
  }
  console.log(
    `checker shape accuracy at 32px blurred + JPEG: ${((shapeRight / items.length) * 100).toFixed(1)}% of ${items.length}`,
  );
  assert.ok(shapeRight / items.length >= 0.8);
});

test('checker: a plain image has no shape; RGBA input; bad input is refused', () => {
  const w = 20;
  const h = 10;
  const rgba = new Uint8Array(w * h * 4);
  for (let i = 0; i < w * h; i++) rgba.set([...COLORS.green, 255], i * 4);
  assert.deepEqual(checkImage(rgba, w, h, 4), { background: 'green', shapeColor: null, shape: null, shapeFraction: 0 });
  // A 6x6 white block in a black 20x10 image: 18% of the pixels, a square.
  const rgb = new Uint8Array(w * h * 3);
  for (let i = 0; i < w * h; i++) rgb.set(COLORS.black, i * 3);
  for (let y = 3; y < 9; y++) for (let x = 7; x < 13; x++) rgb.set(COLORS.white, (y * w + x) * 3);
  const r = checkImage(rgb, w, h, 3);
  assert.equal(r.background, 'black');
  assert.equal(r.shapeColor, 'white');
  assert.equal(r.shape, 'square');
  assert.equal(r.shapeFraction, 36 / 200);
  assert.throws(() => checkImage(rgb, w, h + 1, 3), /bytes is not 20x11x3/);
  assert.throws(() => checkImage(rgb, 2, 2, 3), /too small/);
});

test('checkPng refuses bytes that are not an image', async () => {
  await assert.rejects(checkPng(Buffer.from('not an image')), /checkPng: cannot decode/);
});
