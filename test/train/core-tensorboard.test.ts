// TensorBoard event files: written by src/train/core/tensorboard.ts, read back by an independent parser
// (test/helpers/tfevents.ts: its own framing and CRC check, protobuf types from TensorFlow's .proto text).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { TensorBoardWriter, maskedCrc32c, pngHeader } from '../../src/train/core/tensorboard.ts';
import { readEvents } from '../helpers/tfevents.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'muse-tensorboard-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('masked CRC-32C matches the published check value', () => {
  // CRC-32C("123456789") = 0xE3069283 (RFC 3720 check value); TFRecord masks it: rotate right 15, add 0xa282ead8.
  const crc = 0xe3069283;
  const expected = (((crc >>> 15) | (crc << 17)) + 0xa282ead8) >>> 0;
  assert.equal(maskedCrc32c(Buffer.from('123456789')), expected);
});

test("scalars, images and the resume marker read back through TensorFlow's protobuf definitions", async () => {
  const dir = path.join(tmp, 'run1');
  let t = 1_700_000_000.25;
  const w = TensorBoardWriter.open(dir, { now: () => (t += 1), resumedAfterStep: 40 });
  w.scalars(41, { loss: 1.25, lr: 3e-4, grad_norm: 0.5 });
  w.scalars(42, { loss: Number.NaN });
  const rgb = await sharp({ create: { width: 12, height: 7, channels: 3, background: { r: 200, g: 10, b: 30 } } })
    .png()
    .toBuffer();
  const rgba = await sharp({
    create: { width: 5, height: 9, channels: 4, background: { r: 0, g: 0, b: 255, alpha: 0.5 } },
  })
    .png()
    .toBuffer();
  w.image(42, 'samples', rgb);
  w.image(43, 'reconstructions', rgba);
  w.close();

  const files = readdirSync(dir);
  assert.equal(files.length, 1);
  assert.match(
    files[0],
    new RegExp(
      `^events\\.out\\.tfevents\\.1700000001\\.${os.hostname().replace(/[.]/g, '\\.')}\\.${process.pid}\\.\\d+$`,
    ),
  );
  const events = readEvents(path.join(dir, files[0]));
  assert.equal(events.length, 6);
  assert.equal(events[0].file_version, 'brain.Event:2');
  assert.equal(events[0].wall_time, 1_700_000_002.25, 'seconds since the epoch as a double');
  assert.deepEqual(
    [events[1].step, events[1].session_log],
    [41, { status: 'START' }],
    'purges steps >= 41 of earlier files',
  );
  const [s41, s42, i42, i43] = events.slice(2);
  assert.equal(s41.step, 41);
  assert.deepEqual(
    s41.summary!.value.map((v) => v.tag),
    ['loss', 'lr', 'grad_norm'],
  );
  assert.equal(s41.summary!.value[0].simple_value, 1.25);
  assert.equal(s41.summary!.value[1].simple_value, Math.fround(3e-4), 'a float32, as TensorBoard stores it');
  assert.ok(Number.isNaN(s42.summary!.value[0].simple_value));
  const im = i42.summary!.value[0];
  assert.deepEqual(
    [i42.step, im.tag, im.image!.width, im.image!.height, im.image!.colorspace],
    [42, 'samples', 12, 7, 3],
  );
  assert.ok(Buffer.compare(im.image!.encoded_image_string, rgb) === 0, 'the PNG bytes as given');
  assert.deepEqual(
    [i43.summary!.value[0].image!.width, i43.summary!.value[0].image!.height, i43.summary!.value[0].image!.colorspace],
    [5, 9, 4],
  );
  assert.ok(events.every((e, i) => i === 0 || e.wall_time > events[i - 1].wall_time));
});

test('a flipped byte is caught by the record CRCs; a non-PNG image is refused by name', () => {
  const dir = path.join(tmp, 'run2');
  const w = TensorBoardWriter.open(dir);
  w.scalars(1, { loss: 2 });
  assert.throws(
    () => w.image(1, 'samples', Buffer.from('GIF89a-not-a-png-at-all-here')),
    /tensorboard image 'samples': not a PNG image/,
  );
  w.close();
  const file = path.join(dir, readdirSync(dir)[0]);
  assert.equal(readEvents(file).length, 3, 'file version, session start, one scalar event');
  const bytes = readFileSync(file);
  bytes[bytes.length - 6] ^= 0x01; // inside the last record's data
  writeFileSync(file, bytes);
  assert.throws(() => readEvents(file), /bad data CRC/);
  assert.throws(() => pngHeader(Buffer.alloc(30), 'x'), /x: not a PNG image/);
});

/**
 * TensorBoard's event accumulator (tensorboard/backend/event_processing/event_accumulator.py): files of a run are
 * read in name order; the first SessionLog START of the run marks its start and is ignored, every later START
 * purges the scalars of its step and later. Returns the steps of `tag` it ends up showing.
 */
function stepsTensorBoardShows(dir: string, tag: string): number[] {
  let seenStart = false;
  let steps: number[] = [];
  for (const f of readdirSync(dir).sort()) {
    for (const e of readEvents(path.join(dir, f))) {
      if (e.session_log?.status === 'START') {
        if (seenStart) steps = steps.filter((s) => s < Number(e.step));
        seenStart = true;
      }
      if (e.summary?.value.some((v) => v.tag === tag)) steps.push(Number(e.step));
    }
  }
  return steps;
}

test('a run killed after its checkpoint and resumed shows each step once in TensorBoard', () => {
  const dir = path.join(tmp, 'run3');
  let t = 1_700_000_000;
  const fresh = TensorBoardWriter.open(dir, { now: () => (t += 1) });
  for (let s = 1; s <= 30; s++) fresh.scalars(s, { loss: 1 / s }); // checkpoint at 20, killed after 30
  fresh.close();
  const first = readEvents(fresh.file);
  assert.deepEqual(
    [first[1].step, first[1].session_log],
    [1, { status: 'START' }],
    'a fresh run starts with a session start',
  );
  const resumed = TensorBoardWriter.open(dir, { now: () => (t += 1), resumedAfterStep: 20 });
  for (let s = 21; s <= 40; s++) resumed.scalars(s, { loss: 1 / s });
  resumed.close();
  assert.deepEqual(
    stepsTensorBoardShows(dir, 'loss'),
    Array.from({ length: 40 }, (_, i) => i + 1),
  );
});
