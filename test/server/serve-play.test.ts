/**
 * The playground of `muse-data serve --checkpoint`: generations stream their decoding steps over server-sent
 * events and end with the same image `sample()` gives for the settings; one generation runs at a time (a queue,
 * 429 when full); feedback is stored with the settings; two checkpoints run side by side. Tiny random checkpoints
 * with the real architecture, wasm backend.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/runtime/backend.ts';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.ts';
import { sample } from '../../src/sample/sample.ts';
import { buildServer } from '../../src/server/app.ts';

let tmp: string;
let ckA: string;
let ckB: string;

before(async () => {
  await initBackend('wasm', { quiet: true });
  tmp = await mkdtemp(path.join(os.tmpdir(), 'muse-serve-play-'));
  ckA = await writeTinyCheckpoint(path.join(tmp, 'a'), { seed: 1 });
  ckB = await writeTinyCheckpoint(path.join(tmp, 'b'), { seed: 2 });
});
after(async () => {
  await tf.setBackend('cpu');
});

interface Sse {
  event: string;
  data: any;
}

/** Reads a server-sent event stream to its end. */
async function readEvents(url: string, onEvent?: (e: Sse) => void): Promise<Sse[]> {
  const res = await fetch(url);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/event-stream');
  const text = res.body!.pipeThrough(new TextDecoderStream());
  const out: Sse[] = [];
  let buf = '';
  for await (const chunk of text) {
    buf += chunk;
    let i: number;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const event = /^event: (.*)$/m.exec(block)![1];
      const data = JSON.parse(/^data: (.*)$/m.exec(block)![1]);
      out.push({ event, data });
      onEvent?.({ event, data });
    }
  }
  return out;
}

const png = (src: string) => Buffer.from(src.replace(/^data:image\/png;base64,/, ''), 'base64');

test('a generation streams every decoding step and ends with the image sample() gives; feedback is stored with the settings', async () => {
  const feedbackFile = path.join(tmp, 'feedback.jsonl');
  const app = await buildServer({ dataRoot: path.join(tmp, 'root'), checkpoints: [ckA], feedbackFile });
  try {
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    const page = await (await fetch(`${base}/play`)).text();
    assert.match(page, /id="play-form"/);
    const settings = { prompt: 'a red circle on a blue background', guidance: 3, steps: 4, seed: 7, num: 2 };
    const res = await fetch(`${base}/api/play/generate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(settings),
    });
    assert.equal(res.status, 202);
    const job = (await res.json()) as { job: string; events: string };
    const events = await readEvents(`${base}${job.events}`);
    assert.deepEqual(
      events.map((e) => e.event),
      ['queued', 'start', 'step', 'step', 'step', 'step', 'image', 'image', 'done'],
    );
    const steps = events.filter((e) => e.event === 'step');
    assert.deepEqual(
      steps.map((e) => e.data.step),
      [0, 1, 2, 3],
    );
    for (const s of steps) {
      assert.equal(s.data.images.length, 2);
      const meta = await sharp(png(s.data.images[0])).metadata();
      assert.equal(meta.format, 'png');
    }
    // The stream's final images are the sampler's for the same settings.
    const direct = await sample({
      checkpoint: ckA,
      prompts: [settings.prompt],
      guidance: 3,
      steps: 4,
      seed: 7,
      num: 2,
    });
    const finals = events.filter((e) => e.event === 'image');
    assert.deepEqual(
      finals.map((e) => png(e.data.src)),
      direct.images.map((im) => im.png),
    );
    assert.deepEqual(png(steps[3].data.images[1]), direct.images[1].png, 'the last step shows the finished image');
    // Replaying a finished job's stream gives the same events.
    assert.equal((await readEvents(`${base}${job.events}`)).length, events.length);

    const vote = (body: unknown) =>
      fetch(`${base}/api/play/feedback`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    assert.equal((await vote({ job: job.job, checkpoint: 0, image: 1, vote: 'up' })).status, 200);
    const lines = (await readFile(feedbackFile, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.equal(lines.length, 1);
    assert.deepEqual([lines[0].job, lines[0].image, lines[0].vote, lines[0].checkpoint], [job.job, 1, 'up', ckA]);
    assert.deepEqual(lines[0].settings, settings);
    const noImage = await vote({ job: job.job, checkpoint: 0, image: 3, vote: 'down' });
    assert.equal(noImage.status, 400);
    assert.match(((await noImage.json()) as { error: string }).error, /has no image 3/);
    assert.equal((await vote({ job: 'feedfeed', checkpoint: 0, image: 0, vote: 'up' })).status, 404);
    assert.equal((await vote({ job: job.job, checkpoint: 0, image: 0, vote: 'sideways' })).status, 400);

    const bad = async (body: unknown, re: RegExp) => {
      const r = await fetch(`${base}/api/play/generate`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      assert.equal(r.status, 400);
      assert.match(((await r.json()) as { error: string }).error, re);
    };
    await bad({ prompt: 'x', steps: 1000 }, /steps must be <= 48/);
    await bad({ prompt: 'x', temperature: 3 }, /must NOT have additional properties/);
    await bad({ prompt: '' }, /prompt must NOT have fewer than 1 characters/);
    await bad({ steps: 2 }, /must have required property 'prompt'/);
  } finally {
    await app.close();
  }
});

test('one generation at a time: the next waits in the queue, a full queue answers 429; two checkpoints side by side', async () => {
  const app = await buildServer({
    dataRoot: path.join(tmp, 'root2'),
    checkpoints: [ckA, ckB],
    maxQueue: 1,
    feedbackFile: path.join(tmp, 'fb2.jsonl'),
  });
  try {
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    const submit = (seed: number) =>
      fetch(`${base}/api/play/generate`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: 'a white star', steps: 3, seed }),
      });
    const r1 = await submit(1);
    const r2 = await submit(2);
    const r3 = await submit(3);
    assert.deepEqual([r1.status, r2.status, r3.status], [202, 202, 429]);
    assert.match(((await r3.json()) as { error: string }).error, /busy/);
    const j1 = (await r1.json()) as { job: string; events: string; position: number };
    const j2 = (await r2.json()) as { job: string; events: string; position: number };
    assert.deepEqual([j1.position, j2.position], [0, 1]);
    const order: string[] = [];
    const [e1, e2] = await Promise.all([
      readEvents(`${base}${j1.events}`, (e) => order.push(`1:${e.event}`)),
      readEvents(`${base}${j2.events}`, (e) => order.push(`2:${e.event}`)),
    ]);
    assert.ok(
      order.indexOf('2:start') > order.indexOf('1:done'),
      `the second starts after the first is done: ${order.join(' ')}`,
    );
    for (const ev of [e1, e2]) {
      const finals = ev.filter((e) => e.event === 'image');
      assert.deepEqual(
        finals.map((e) => e.data.checkpoint),
        [0, 1],
        'both checkpoints, same settings',
      );
      assert.notDeepEqual(png(finals[0].data.src), png(finals[1].data.src));
      assert.deepEqual(
        ev.filter((e) => e.event === 'step').map((e) => `${e.data.checkpoint}.${e.data.step}`),
        ['0.0', '0.1', '0.2', '1.0', '1.1', '1.2'],
      );
    }
    const page = await (await fetch(`${base}/play`)).text();
    assert.match(page, /data-checkpoints="2"/);
    // After the queue drained, a new generation is accepted again.
    const r4 = await submit(4);
    assert.equal(r4.status, 202);
    await readEvents(`${base}${((await r4.json()) as { events: string }).events}`);
  } finally {
    await app.close();
  }
});

test('generations are rate-limited per client (429 with a message)', async () => {
  const app = await buildServer({
    dataRoot: path.join(tmp, 'root3'),
    checkpoints: [ckA],
    generateRateLimit: 1,
    feedbackFile: path.join(tmp, 'fb3.jsonl'),
  });
  try {
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    const submit = () =>
      fetch(`${base}/api/play/generate`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: 'a white star', steps: 2 }),
      });
    const first = await submit();
    assert.equal(first.status, 202);
    const second = await submit();
    assert.equal(second.status, 429);
    assert.match(((await second.json()) as { error: string }).error, /rate limit/i);
    await readEvents(`${base}${((await first.json()) as { events: string }).events}`);
  } finally {
    await app.close();
  }
});
