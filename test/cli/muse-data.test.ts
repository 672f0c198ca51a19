import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FetchProgress, formatDuration } from '../../src/pipeline/progress.ts';
import { runCli } from '../helpers/cli.ts';

const root = path.resolve(import.meta.dirname, '../..');

/** A stand-in for process.stderr that records what is written. */
function fakeStream(isTTY: boolean) {
  const chunks: string[] = [];
  const stream = { isTTY, write: (s: string) => (chunks.push(s), true) } as unknown as NodeJS.WriteStream;
  return { stream, text: () => chunks.join('') };
}

test('progress on a terminal redraws one line with rates, success rate and ETA', () => {
  const out = fakeStream(true);
  const p = new FetchProgress(10, 1, 'auto', out.stream);
  for (let i = 0; i < 4; i++) p.row(i < 3 ? 'ok' : 'failed');
  p.shardDone(0, 1);
  p.finish();
  const text = out.text();
  assert.match(
    text,
    /\r\x1b\[2K\[#+\.+\]\s+40% 4\/10 rows, shards 1\/1 \| [\d.]+ rows\/s, [\d.]+ ok\/s, success 75\.0% \| ETA /,
  );
  assert.ok(text.endsWith('\n'));
});

test('progress off a terminal prints plain lines; --log-format json prints JSON lines', () => {
  const plain = fakeStream(false);
  const p = new FetchProgress(2, 1, 'auto', plain.stream, 0);
  p.row('ok');
  p.row('filtered');
  p.finish();
  const lines = plain.text().trim().split('\n');
  assert.ok(lines.length >= 2);
  assert.ok(
    lines.every((l) => !l.includes('\x1b')),
    'no terminal escapes',
  );
  assert.match(lines.at(-1)!, /2\/2 rows.*success 50\.0%/);

  const json = fakeStream(true);
  const q = new FetchProgress(2, 1, 'json', json.stream, 0);
  q.row('ok');
  q.shardDone(0, 0.5);
  q.finish();
  const events = json
    .text()
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    events.map((e) => e.event),
    ['progress', 'shard_done', 'progress'],
  );
  assert.equal(events.at(-1).successes, 1);
  assert.equal(events.at(-1).success_rate, 1);
  assert.equal(formatDuration(3725), '1h02m');
  assert.equal(formatDuration(65), '1m05s');
});

// Every run's index goes to a fresh data root, never the project's datasets/ (dataset names are unique per root).
function cli(args: string[]) {
  return runCli('muse-data', args, {
    cwd: root,
    env: { ...process.env, MUSE_DATA_ROOT: mkdtempSync(path.join(os.tmpdir(), 'muse-cli-root-')) },
  });
}

test('the CLI: clear errors and exit codes for bad arguments', async () => {
  const unknown = await cli(['fetch', 'laoin']);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /unknown pipeline 'laoin' \(did you mean 'laion'\?\)/);
  assert.doesNotMatch(unknown.stderr, /at .*\.ts:\d+/, 'no stack trace for a user error');

  const missing = await cli([
    'fetch',
    '--input',
    '/nonexistent/meta.parquet',
    '--out',
    await mkdtemp(path.join(os.tmpdir(), 'muse-cli-')),
  ]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /\/nonexistent\/meta\.parquet/);

  const bad = await cli([
    'fetch',
    'sample',
    '--shards',
    '7-9',
    '--out',
    await mkdtemp(path.join(os.tmpdir(), 'muse-cli-')),
  ]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /shard 9 does not exist; the input has 3 shard/);

  const usage = await cli(['fetch', 'sample', '--resize-mode', 'squash']);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /resize-mode/);
});

test('fetch: a run in which no row succeeds says why (reasons with counts) and exits 1', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'muse-cli-'));
  // Printable junk where URLs should be: every row fails before any network call.
  let seed = 7;
  const junk = () =>
    Array.from({ length: 24 }, () => String.fromCharCode(33 + ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % 94)))
      .join('')
      .replace(/[\t"]/g, '#');
  const rows = ['url\tcaption', ...Array.from({ length: 125 }, (_, i) => `${junk()}\tcaption ${i}`)];
  await writeFile(path.join(dir, 'garbage.tsv'), rows.join('\n') + '\n');
  for (const deadLinks of ['skip', 'fallback']) {
    const r = await cli([
      'fetch',
      '--input',
      path.join(dir, 'garbage.tsv'),
      '--input-format',
      'tsv',
      '--url-col',
      'url',
      '--caption-col',
      'caption',
      '--dead-links',
      deadLinks,
      '--out',
      path.join(dir, deadLinks),
      '--log-format',
      'plain',
    ]);
    assert.equal(r.code, 1, `--dead-links ${deadLinks}: ${r.stderr}`);
    const status = deadLinks === 'skip' ? 'failed' : 'fallback';
    assert.match(
      r.stderr,
      new RegExp(
        `no row of 125 was fetched successfully; most common reasons \\(status reason count\\): ${status} bad_url 125\\.`,
      ),
    );
  }
  // A run with successes keeps exit code 0 (the bundled sample, one shard).
  const ok = await cli([
    'fetch',
    'sample',
    '--shards',
    '0',
    '--out',
    path.join(dir, 'sample'),
    '--data-root',
    path.join(dir, 'root'),
    '--log-format',
    'plain',
  ]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.doesNotMatch(ok.stderr, /fetched successfully/);
});
