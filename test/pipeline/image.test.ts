import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import sharp from 'sharp';
import type { ImageConfig } from '../../src/pipeline/config-types.ts';
import {
  createImageProcessor,
  dhash64,
  dhashRaw,
  fallbackImage,
  hammingDistance,
  planResize,
  type ImageResult,
} from '../../src/image/index.ts';
import { roundHalfEven } from '../../src/image/geometry.ts';
import { DEFAULT_IMAGE } from '../../src/pipeline/config.ts';

// ---- helpers: synthetic images made with sharp ----

function imageConfig(over: Partial<ImageConfig> = {}): ImageConfig {
  return { ...DEFAULT_IMAGE, ...over };
}

type RGB = [number, number, number];
const RED: RGB = [220, 20, 20];
const BLUE: RGB = [20, 20, 220];
const GREEN: RGB = [20, 200, 20];

function solid(width: number, height: number, [r, g, b]: RGB) {
  return sharp({ create: { width, height, channels: 3, background: { r, g, b } } });
}

/** Blocks of colour side by side, left to right, each `w` wide. */
async function stripes(w: number, height: number, colours: RGB[]): Promise<Buffer> {
  const parts = await Promise.all(colours.map((c) => solid(w, height, c).png().toBuffer()));
  return solid(w * colours.length, height, [0, 0, 0])
    .composite(parts.map((input, i) => ({ input, left: i * w, top: 0 })))
    .png()
    .toBuffer();
}

/** Photo-like smooth pattern (sums of low-frequency waves); `seed` changes the picture. */
function pattern(width: number, height: number, seed: number) {
  const data = Buffer.alloc(width * height * 3);
  const k = (n: number) => 2 + ((seed * 7 + n * 13) % 5);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const u = x / width;
      const v = y / height;
      const i = (y * width + x) * 3;
      data[i] = 128 + 90 * Math.sin(k(1) * u * 3.1 + seed) * Math.cos(k(2) * v * 2.3);
      data[i + 1] = 128 + 90 * Math.sin(k(3) * (u + v) * 2.7 + seed * 2);
      data[i + 2] = 128 + 90 * Math.cos(k(4) * v * 3.3 - seed) * Math.sin(k(5) * u * 1.9 + 1);
    }
  }
  return sharp(data, { raw: { width, height, channels: 3 } });
}

async function pixelAt(image: Buffer, x: number, y: number): Promise<RGB> {
  const { data, info } = await sharp(image).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const i = (y * info.width + x) * info.channels;
  return [data[i], data[i + 1], data[i + 2]];
}

function assertNear(actual: RGB, expected: RGB, tol: number, what: string) {
  assert.ok(
    actual.every((v, i) => Math.abs(v - expected[i]) <= tol),
    `${what}: got rgb(${actual}) expected ≈ rgb(${expected}) ±${tol}`,
  );
}

function ok(r: ImageResult): Extract<ImageResult, { ok: true }> {
  assert.ok(r.ok, `expected ok, got ${JSON.stringify(r)}`);
  return r;
}

function notOk(r: ImageResult): Extract<ImageResult, { ok: false }> {
  assert.ok(!r.ok, 'expected a rejection');
  return r;
}

async function outputSize(r: ImageResult) {
  const m = await sharp(ok(r).data).metadata();
  return [m.width, m.height];
}

// ---- geometry ----

test('roundHalfEven rounds like Python', () => {
  assert.deepEqual([0.5, 1.5, 2.5, 2.4, 2.6, 341.5].map(roundHalfEven), [0, 2, 2, 2, 3, 342]);
});

test('planResize follows img2dataset per mode', () => {
  // 800x600 -> smallest side 256: 341.33 x 256
  assert.deepEqual(planResize(800, 600, 256, 'keep_ratio', false), {
    resize: { width: 341, height: 256 },
    crop: null,
    pad: null,
    width: 341,
    height: 256,
  });
  const cc = planResize(800, 600, 256, 'center_crop', false);
  assert.deepEqual(cc.crop, { left: 42, top: 0, width: 256, height: 256 }); // (341-256)//2 = 42
  const b = planResize(600, 257, 256, 'border', false); // -> 256 x 109.65 -> 110, pad 146 = 73 + 73
  assert.deepEqual(b.resize, { width: 256, height: 110 });
  assert.deepEqual(b.pad, { top: 73, bottom: 73, left: 0, right: 0 });
  const odd = planResize(600, 255, 256, 'border', false); // 256 x 108.8 -> 109, pad 147 = 73 + 74
  assert.deepEqual(odd.pad, { top: 73, bottom: 74, left: 0, right: 0 });
  assert.equal(planResize(800, 600, 256, 'no', false).resize, null);
  // smallest side exactly `size` is not "bigger": img2dataset leaves it alone with resize_only_if_bigger
  assert.deepEqual(planResize(400, 256, 256, 'center_crop', true), {
    resize: null,
    crop: null,
    pad: null,
    width: 400,
    height: 256,
  });
  assert.deepEqual(planResize(400, 256, 256, 'center_crop', false).crop, { left: 72, top: 0, width: 256, height: 256 });
});

// ---- resize modes ----

test('each resize mode gives the expected output size', async () => {
  const src = await pattern(800, 600, 1).jpeg().toBuffer();
  const sizeOf = async (mode: ImageConfig['resize_mode']) =>
    outputSize(await createImageProcessor(imageConfig({ resize_mode: mode }))(src));
  assert.deepEqual(await sizeOf('center_crop'), [256, 256]);
  assert.deepEqual(await sizeOf('keep_ratio'), [341, 256]);
  assert.deepEqual(await sizeOf('border'), [256, 256]);
  assert.deepEqual(await sizeOf('no'), [800, 600]);
});

test('center_crop keeps the middle of the image', async () => {
  // 900x300: red | green | blue thirds -> 300x100 after resize -> centre 100x100 is the green third
  const src = await stripes(300, 300, [RED, GREEN, BLUE]);
  const r = ok(await createImageProcessor(imageConfig({ size: 100, encode_format: 'png' }))(src));
  assert.deepEqual([r.width, r.height], [100, 100]);
  for (const [x, y] of [
    [5, 5],
    [94, 94],
    [50, 50],
  ])
    assertNear(await pixelAt(r.data, x, y), GREEN, 2, `(${x},${y})`);
});

test('border pads with white above and below a landscape image, as img2dataset does', async () => {
  const src = await solid(800, 400, [20, 120, 40]).jpeg().toBuffer(); // -> 256x128, pad 64 + 64
  const r = ok(await createImageProcessor(imageConfig({ resize_mode: 'border', encode_format: 'png' }))(src));
  assert.deepEqual([r.width, r.height], [256, 256]);
  assertNear(await pixelAt(r.data, 128, 0), [255, 255, 255], 0, 'top border');
  assertNear(await pixelAt(r.data, 128, 62), [255, 255, 255], 0, 'top border, last row');
  assertNear(await pixelAt(r.data, 128, 255), [255, 255, 255], 0, 'bottom border');
  assertNear(await pixelAt(r.data, 128, 128), [20, 120, 40], 3, 'image');
  assertNear(await pixelAt(r.data, 0, 100), [20, 120, 40], 3, 'image reaches the left edge');
});

test('resize_only_if_bigger never upscales', async () => {
  const small = await pattern(200, 150, 2).png().toBuffer();
  const big = await pattern(600, 500, 2).png().toBuffer();
  const run = async (mode: ImageConfig['resize_mode'], onlyIfBigger: boolean, src: Buffer) =>
    outputSize(
      await createImageProcessor(imageConfig({ resize_mode: mode, resize_only_if_bigger: onlyIfBigger }))(src),
    );
  for (const mode of ['center_crop', 'keep_ratio', 'border'] as const) {
    assert.deepEqual(await run(mode, true, small), [200, 150], mode);
  }
  assert.deepEqual(await run('center_crop', false, small), [256, 256]);
  assert.deepEqual(await run('keep_ratio', false, small), [341, 256]);
  assert.deepEqual(await run('center_crop', true, big), [256, 256]);
  assert.deepEqual(await run('keep_ratio', true, big), [307, 256]);
});

// ---- colour, orientation, alpha ----

test('EXIF orientation 6 is applied: sizes swapped, content rotated', async () => {
  // stored 300x200, left half red, right half blue; orientation 6 = display rotated 90° clockwise,
  // so the displayed image is 200x300 with red on top and blue below
  const stored = await sharp(await stripes(150, 200, [RED, BLUE]))
    .jpeg({ quality: 95 })
    .withMetadata({ orientation: 6 })
    .toBuffer();
  assert.equal((await sharp(stored).metadata()).orientation, 6);
  const r = ok(await createImageProcessor(imageConfig({ resize_mode: 'no', encode_format: 'png' }))(stored));
  assert.deepEqual([r.originalWidth, r.originalHeight, r.width, r.height], [200, 300, 200, 300]);
  assertNear(await pixelAt(r.data, 100, 20), RED, 12, 'top');
  assertNear(await pixelAt(r.data, 100, 280), BLUE, 12, 'bottom');
  assert.equal((await sharp(r.data).metadata()).orientation, undefined, 'no orientation tag left in the output');
});

test('PNG alpha is flattened on white', async () => {
  // left half opaque blue, right half fully transparent (red underneath)
  const opaque = await solid(100, 100, BLUE).ensureAlpha(1).png().toBuffer();
  const src = await sharp({
    create: { width: 200, height: 100, channels: 4, background: { r: 255, g: 0, b: 0, alpha: 0 } },
  })
    .composite([{ input: opaque, left: 0, top: 0 }])
    .png()
    .toBuffer();
  const r = ok(await createImageProcessor(imageConfig({ resize_mode: 'no', encode_format: 'png' }))(src));
  assert.equal((await sharp(r.data).metadata()).channels, 3);
  assertNear(await pixelAt(r.data, 150, 50), [255, 255, 255], 0, 'transparent -> white');
  assertNear(await pixelAt(r.data, 50, 50), BLUE, 0, 'opaque kept');
});

test('CMYK JPEG comes out as 3-channel sRGB', async () => {
  const src = await solid(300, 300, RED).toColourspace('cmyk').jpeg().toBuffer();
  assert.equal((await sharp(src).metadata()).space, 'cmyk');
  const r = ok(await createImageProcessor(imageConfig())(src));
  const m = await sharp(r.data).metadata();
  assert.equal(m.space, 'srgb');
  assert.equal(m.channels, 3);
  const [red, green, blue] = await pixelAt(r.data, 128, 128);
  assert.ok(red > 170 && green < 60 && blue < 60, `still red: ${[red, green, blue]}`);
});

test('16-bit and greyscale inputs give 8-bit RGB output', async () => {
  const p = createImageProcessor(imageConfig({ encode_format: 'png' }));
  const deep = await pattern(300, 300, 3).toColourspace('rgb16').png().toBuffer();
  const grey = await pattern(300, 300, 3).greyscale().png().toBuffer();
  for (const src of [deep, grey]) {
    const m = await sharp(ok(await p(src)).data).metadata();
    assert.deepEqual([m.depth, m.channels, m.width], ['uchar', 3, 256]);
  }
});

// ---- filters ----

test('min_image_size rejects below and passes at the boundary', async () => {
  const p = createImageProcessor(imageConfig({ min_image_size: 200 }));
  const r = notOk(await p(await solid(300, 199, RED).png().toBuffer()));
  assert.deepEqual([r.status, r.reason, r.originalWidth, r.originalHeight], ['filtered', 'min_image_size', 300, 199]);
  assert.match(r.error, /199/);
  ok(await p(await solid(300, 200, RED).png().toBuffer()));
});

test('max_aspect_ratio rejects above and passes at the boundary', async () => {
  const p = createImageProcessor(imageConfig({ max_aspect_ratio: 2 }));
  assert.equal(notOk(await p(await solid(200, 401, RED).png().toBuffer())).reason, 'max_aspect_ratio');
  ok(await p(await solid(200, 400, RED).png().toBuffer()));
});

test('max_image_area rejects above and passes at the boundary', async () => {
  const p = createImageProcessor(imageConfig({ max_image_area: 60000 }));
  const r = notOk(await p(await solid(301, 200, RED).png().toBuffer()));
  assert.deepEqual([r.status, r.reason], ['filtered', 'max_image_area']);
  ok(await p(await solid(300, 200, RED).png().toBuffer()));
});

test('min_file_bytes compares the downloaded byte length', async () => {
  const src = await pattern(300, 300, 4).jpeg().toBuffer();
  const r = notOk(await createImageProcessor(imageConfig({ min_file_bytes: src.length + 1 }))(src));
  assert.deepEqual([r.status, r.reason], ['filtered', 'min_file_bytes']);
  ok(await createImageProcessor(imageConfig({ min_file_bytes: src.length }))(src));
});

/** A real 64x64 PNG whose IHDR is patched to claim width x height (CRC recomputed). */
async function pngClaiming(width: number, height: number): Promise<Buffer> {
  const png = Buffer.from(await solid(64, 64, RED).png().toBuffer());
  // signature (8) + length (4) + 'IHDR' (4) + width (4) + height (4) ... + CRC over type+data
  assert.equal(png.toString('latin1', 12, 16), 'IHDR');
  png.writeUInt32BE(width, 16);
  png.writeUInt32BE(height, 20);
  png.writeUInt32BE(crc32(png.subarray(12, 29)) >>> 0, 29);
  return png;
}

test('decompression bomb is refused from the header, without decoding', async () => {
  const bomb = await pngClaiming(40000, 40000);
  const claimed = await sharp(bomb, { limitInputPixels: false }).metadata();
  assert.deepEqual([claimed.width, claimed.height], [40000, 40000]);

  // A decode would fail (decode_error) or exhaust memory; these reasons come from the header check alone.
  const filtered = notOk(await createImageProcessor(imageConfig({ max_image_area: 89_478_485 }))(bomb));
  assert.deepEqual([filtered.status, filtered.reason, filtered.originalWidth], ['filtered', 'max_image_area', 40000]);

  const failed = notOk(await createImageProcessor(imageConfig({ max_image_area: 0 }))(bomb));
  assert.deepEqual([failed.status, failed.reason], ['failed', 'pixel_limit']);
});

test('non-images and truncated JPEGs fail as decode_error', async () => {
  const p = createImageProcessor(imageConfig());
  const html = notOk(await p(Buffer.from('<!DOCTYPE html><html><body><h1>404 Not Found</h1></body></html>')));
  assert.deepEqual([html.status, html.reason], ['failed', 'decode_error']);
  assert.match(html.error, /not an image: unrecognised file format/);

  const jpeg = await pattern(600, 400, 5).jpeg({ quality: 90 }).toBuffer();
  const truncated = notOk(await p(jpeg.subarray(0, Math.floor(jpeg.length * 0.6))));
  assert.deepEqual([truncated.status, truncated.reason], ['failed', 'decode_error']);
  assert.equal(truncated.error, 'jpeg 600x400: image data is corrupt or truncated');
  assert.deepEqual([truncated.originalWidth, truncated.originalHeight], [600, 400], 'header was still readable');

  assert.equal(notOk(await p(Buffer.alloc(0))).reason, 'decode_error');
  const svg = Buffer.from(
    '<svg xmlns="http://www.w3.org/2000/svg" width="300" height="300"><rect width="300" height="300"/></svg>',
  );
  assert.deepEqual([notOk(await p(svg)).status, notOk(await p(svg)).reason], ['failed', 'unsupported_format']);
});

// ---- outputs and hashes ----

test('sha256 is of the downloaded bytes; each output format decodes', async () => {
  const src = await pattern(500, 400, 6).jpeg().toBuffer();
  for (const fmt of ['jpg', 'webp', 'png'] as const) {
    const r = ok(await createImageProcessor(imageConfig({ encode_format: fmt }))(src));
    assert.equal(r.sha256, createHash('sha256').update(src).digest('hex'));
    assert.equal(r.ext, fmt);
    const m = await sharp(r.data).metadata();
    assert.deepEqual([m.format, m.width, m.height], [fmt === 'jpg' ? 'jpeg' : fmt, 256, 256]);
  }
});

test('dHash is near for resized/re-encoded copies and far for another image', async () => {
  const original = await pattern(1000, 750, 7).jpeg({ quality: 92 }).toBuffer();
  const copy = await sharp(original).resize(500).jpeg({ quality: 60 }).toBuffer();
  const webpCopy = await sharp(original).resize(640).webp({ quality: 70 }).toBuffer();
  const other = await pattern(1000, 750, 8).jpeg({ quality: 92 }).toBuffer();

  const p = createImageProcessor(imageConfig());
  const [a, b, c, d] = await Promise.all([original, copy, webpCopy, other].map(async (x) => ok(await p(x)).phash));
  assert.match(a, /^[0-9a-f]{16}$/);
  assert.ok(hammingDistance(a, b) <= 6, `jpeg copy: ${hammingDistance(a, b)} bits`);
  assert.ok(hammingDistance(a, c) <= 6, `webp copy: ${hammingDistance(a, c)} bits`);
  assert.ok(hammingDistance(a, d) >= 20, `other image: ${hammingDistance(a, d)} bits`);

  // dhash64 of encoded files agrees with itself across copies, and with the processor's hash
  const [ea, eb, ed] = await Promise.all([original, copy, other].map((x) => dhash64(x)));
  assert.ok(hammingDistance(ea, eb) <= 6, `encoded copy: ${hammingDistance(ea, eb)} bits`);
  assert.ok(hammingDistance(ea, ed) >= 20, `encoded other: ${hammingDistance(ea, ed)} bits`);
  const out = ok(await createImageProcessor(imageConfig({ resize_mode: 'no' }))(original));
  assert.ok(hammingDistance(out.phash, ea) <= 6, `processor vs dhash64: ${hammingDistance(out.phash, ea)} bits`);
});

test('dhashRaw bit order and hammingDistance', async () => {
  // 9x8 grey ramp rising to the right: every cell brighter than its left neighbour -> all ones
  const ramp = new Uint8Array(9 * 8).map((_, i) => (i % 9) * 20);
  assert.equal(dhashRaw({ data: ramp, width: 9, height: 8, channels: 1 }), 'ffffffffffffffff');
  const falling = ramp.map((v) => 255 - v);
  assert.equal(dhashRaw({ data: falling, width: 9, height: 8, channels: 1 }), '0000000000000000');
  // only the first row rising -> only the top byte set
  const firstRow = ramp.map((v, i) => (i < 9 ? v : 255 - v));
  assert.equal(await dhash64({ data: firstRow, width: 9, height: 8, channels: 1 }), 'ff00000000000000');
  assert.equal(hammingDistance('ffffffffffffffff', '0000000000000000'), 64);
  assert.equal(hammingDistance('ff00000000000001', 'ff00000000000000'), 1);
  assert.throws(() => hammingDistance('ab', 'abc'));
  assert.throws(() => hammingDistance('zz', '00'));
});

test('fallback image: deterministic, coloured by key, target size', async () => {
  const cfg = imageConfig();
  const a1 = await fallbackImage('000420017', cfg);
  const a2 = await fallbackImage('000420017', cfg);
  const b = await fallbackImage('000420018', cfg);
  assert.ok(a1.data.equals(a2.data), 'same key -> same bytes');
  assert.match(a1.color, /^#[0-9a-f]{6}$/);
  assert.equal(a1.color, '#' + createHash('sha256').update('000420017').digest('hex').slice(0, 6));
  assert.notEqual(a1.color, b.color);
  assert.ok(!a1.data.equals(b.data));
  const m = await sharp(a1.data).metadata();
  assert.deepEqual([m.format, m.width, m.height, a1.width, a1.height, a1.ext], ['jpeg', 256, 256, 256, 256, 'jpg']);
  const hex = (c: string): RGB => [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16)) as RGB;
  assertNear(await pixelAt(a1.data, 10, 200), hex(a1.color), 3, 'solid colour');

  const png = await fallbackImage('k', imageConfig({ resize_mode: 'no', encode_format: 'png', size: 64 }));
  assert.deepEqual([png.width, png.height, png.ext, (await sharp(png.data).metadata()).format], [64, 64, 'png', 'png']);
  assertNear(await pixelAt(png.data, 0, 0), hex(png.color), 0, 'png exact');
});
