/**
 * `muse-data serve` end to end in headless Chromium (Debian's `chromium`, driven by playwright-core): search an
 * opted-out URL and see its samples; upload a re-encoded copy of a sample and find it; file a request, accept it
 * with the CLI, apply, and see the sample gone from the explorer; filter the grid and open a sample; generate an
 * image in the playground with a tiny checkpoint. Screenshots of each page go to test-artifacts/serve/.
 *
 * Without /usr/bin/chromium the test is skipped (said so), except in CI (CI set, as .ci/run's runner does; .ci/run
 * installs chromium) or with MUSE_REQUIRE_BROWSER=1.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs';
import type { BrowserContext, Page } from 'playwright-core';
import type { FastifyInstance } from 'fastify';
import { openIndex } from '../../src/index-db/db.ts';
import { OptoutStore } from '../../src/optout/store.ts';
import { initBackend } from '../../src/runtime/backend.ts';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.ts';
import { skipUnlessAvailable } from '../helpers/system-component.ts';
import { buildServer } from '../../src/server/app.ts';
import { fetchSample, originalImage, PROJECT, type ServeFixture } from '../helpers/serve-fixture.ts';
import { runCli } from '../helpers/cli.ts';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = path.join(PROJECT, 'test-artifacts', 'serve');
const skip = skipUnlessAvailable(
  'browser',
  existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is not installed`,
  'apt-get install chromium',
);

let f: ServeFixture;
let app: FastifyInstance;
let base: string;
let browser: BrowserContext;
let page: Page;
let profile: string;

before(async () => {
  if (skip) return;
  await mkdir(ARTIFACTS, { recursive: true });
  f = await fetchSample('serve-browser');
  await initBackend('wasm', { quiet: true });
  const ckpt = await writeTinyCheckpoint(path.join(f.dataRoot, 'tiny'), { seed: 3 });
  app = await buildServer({
    dataRoot: f.dataRoot,
    checkpoints: [ckpt],
    feedbackFile: path.join(f.dataRoot, 'feedback.jsonl'),
  });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
  const { chromium } = await import('playwright-core');
  profile = await mkdtemp(path.join(os.tmpdir(), 'muse-chromium-'));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1200, height: 900 },
  });
  page = browser.pages()[0] ?? (await browser.newPage());
  page.setDefaultTimeout(30_000);
});

after(async () => {
  await browser?.close();
  await app?.close();
  if (profile) await rm(profile, { recursive: true, force: true });
  await tf.setBackend('cpu');
});

const shot = (name: string) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });

const okRows = () => f.rows.filter((r) => r.status === 'ok');

test('opt-out page: search an opted-out URL and see its samples', { skip }, async () => {
  const row = okRows()[4];
  const index = openIndex(f.dataRoot);
  new OptoutStore(index).addUrls([row.url]);
  index.close();
  await page.goto(`${base}/optout`);
  await page.fill('#url', row.url.replace('http://sample.invalid/', 'HTTP://Sample.Invalid/'));
  await page.click('#url-search');
  await page.waitForSelector('#lookup-status');
  assert.match((await page.textContent('#lookup-status')) ?? '', /^Opted out/);
  const cards = page.locator('.card.result');
  assert.equal(await cards.count(), 1);
  assert.equal(await cards.first().getAttribute('data-key'), row.key);
  // The thumbnail really loaded (read from the shard tar).
  await page.waitForFunction(() => {
    const i = document.querySelector('.card.result img') as HTMLImageElement | null;
    return !!i && i.complete && i.naturalWidth > 0;
  });
  assert.equal(
    await page.evaluate(() => (document.querySelector('.card.result img') as HTMLImageElement).naturalWidth),
    128,
  );
  await shot('optout-url');
});

test('opt-out page: upload a re-encoded copy of a sample and find it', { skip }, async () => {
  // A square original: a lossy re-encode of these flat pictures moves few dHash bits then (0-8); of a non-square one it
  // can move 20 even framed like the shard (the framing itself is tested with a lossless copy in serve-api.test.ts).
  const row = okRows().find((r) => r.url.endsWith('.jpg') && r.original_width === r.original_height)!;
  const copy = await sharp(await originalImage(row.row))
    .jpeg({ quality: 80 })
    .toBuffer();
  await page.goto(`${base}/optout`);
  await page.setInputFiles('#file', { name: 'mine.jpg', mimeType: 'image/jpeg', buffer: copy });
  await page.click('#upload-search');
  await page.waitForSelector('#upload-status');
  const keys = await page.locator('.card.result').evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.key));
  assert.ok(keys.includes(row.key), `found ${row.key} among ${keys.join(', ')}`);
  await shot('optout-upload');
});

test('file a request, accept it with the CLI, apply, and see the sample gone from the explorer', { skip }, async () => {
  const row = okRows()[9];
  await page.goto(`${base}/datasets/sample?status=ok&per=200`);
  assert.equal(await page.locator(`.card[data-key="${row.key}"]`).count(), 1);
  await page.goto(`${base}/optout`);
  await page.fill('#req-urls', row.url);
  await page.fill('#req-contact', 'owner@example.org');
  await Promise.all([page.waitForURL(/\/optout\/requests\/[0-9a-f]{32}$/), page.click('#req-submit')]);
  assert.equal(await page.getAttribute('#state', 'data-state'), 'pending');
  await shot('request-pending');
  const requestUrl = page.url();

  const list = await runCli('muse-data', [
    'optout',
    'requests',
    'list',
    '--state',
    'pending',
    '--data-root',
    f.dataRoot,
  ]);
  const id = /^(\d+) pending/m.exec(list.stdout)?.[1];
  assert.ok(id, list.stdout + list.stderr);
  const acc = await runCli('muse-data', ['optout', 'requests', 'accept', id, '--data-root', f.dataRoot]);
  assert.equal(acc.code, 0, acc.stderr);
  await page.reload();
  assert.equal(await page.getAttribute('#state', 'data-state'), 'accepted');
  const ap = await runCli('muse-data', ['optout', 'apply', 'sample', '--data-root', f.dataRoot]);
  assert.equal(ap.code, 0, ap.stderr);
  await new Promise((r) => setTimeout(r, 1100)); // the explorer re-reads changed shards at most once a second
  await page.goto(requestUrl);
  assert.match((await page.textContent('#state')) ?? '', /applied in sample at \d{4}-/);
  await shot('request-applied');
  await page.goto(`${base}/datasets/sample?status=ok&per=200`);
  assert.equal(await page.locator(`.card[data-key="${row.key}"]`).count(), 0, 'gone from the grid');
  assert.match((await page.textContent('#optout-state')) ?? '', /last applied to this dataset at version \d+/);
  await page.goto(`${base}/datasets/sample/samples/${row.key}`);
  assert.equal(await page.textContent('#status'), 'opted_out');
  await shot('sample-opted-out');
});

test('explorer: filter the grid and open a sample', { skip }, async () => {
  await page.goto(`${base}/datasets/sample`);
  await shot('explorer');
  await page.selectOption('select[name="status"]', 'ok');
  await page.fill('input[name="q"]', 'blue');
  await Promise.all([page.waitForURL(/status=ok/), page.click('#apply-filters')]);
  const expected = okRows()
    .filter((r) => /\bblue\b/.test(r.caption ?? ''))
    .map((r) => r.key);
  const total = Number(await page.textContent('#total'));
  assert.ok(total > 0 && total <= expected.length, `total ${total}, expected at most ${expected.length}`);
  const keys = await page.locator('.card').evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.key!));
  for (const k of keys) assert.ok(expected.includes(k), `${k} matches the filter`);
  await page.waitForFunction(() =>
    [...document.querySelectorAll('.card img')].every(
      (i) => (i as HTMLImageElement).complete && (i as HTMLImageElement).naturalWidth > 0,
    ),
  );
  await shot('explorer-filtered');
  const first = keys[0];
  await Promise.all([
    page.waitForURL(new RegExp(`/samples/${first}$`)),
    page.click(`.card[data-key="${first}"] a >> nth=0`),
  ]);
  const row = f.rows.find((r) => r.key === first)!;
  assert.equal(await page.textContent('#caption'), row.caption);
  await page.waitForFunction(() => {
    const i = document.getElementById('sample-image') as HTMLImageElement | null;
    return !!i && i.complete && i.naturalWidth > 0;
  });
  assert.equal(
    await page.evaluate(() => (document.getElementById('sample-image') as HTMLImageElement).naturalWidth),
    row.width,
  );
  await shot('sample');
});

test('playground: generate an image with a tiny checkpoint and vote on it', { skip }, async () => {
  await page.goto(`${base}/play`);
  await page.fill('#prompt', 'a green square on a white background');
  await page.fill('#steps', '4');
  await page.click('#generate');
  await page.waitForSelector('#play-status[data-done="1"]');
  const finals = page.locator('img.final');
  assert.equal(await finals.count(), 1);
  assert.equal(await finals.first().evaluate((i) => (i as HTMLImageElement).naturalWidth > 0), true);
  await page.click('.vote-up');
  await page.waitForFunction(() => document.querySelector('.vote-up')?.textContent?.includes('✓'));
  await shot('playground');
});
