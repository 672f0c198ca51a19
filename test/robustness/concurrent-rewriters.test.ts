/**
 * Two rewriters of one dataset started at once, as real processes (`muse-data optout apply`, `dedup --apply`):
 * the dataset's lock (src/dataset/lock.ts) makes the second wait for the first, saying who holds it; both exit 0;
 * no cache file is left empty or unreadable; the dataset ends byte-identical to the same commands run one after
 * the other.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { tableFromIPC } from 'apache-arrow';
import { copyDataRoot, fetchSample, type ServeFixture } from '../helpers/serve-fixture.ts';
import { runCli, type CliRun } from '../helpers/cli.ts';
import { openIndex } from '../../src/index-db/db.ts';
import { OptoutStore } from '../../src/optout/store.ts';
import { lockDataset, lockPath } from '../../src/dataset/lock.ts';
import { cacheShardPath, tableBytes, tokenTable } from '../../src/dataset/cache-format.ts';
import { readTarSamples } from '../../src/shards/tar-reader.ts';
import { shardPaths } from '../../src/dataset/names.ts';

const DISTANCE = '12'; // the bundled sample draws few shapes and colours: near duplicates at this distance
let fixture: ServeFixture;

before(async () => {
  fixture = await fetchSample('rewriters');
  // A token cache per shard, keyed like the tar's members: the rewriters must rewrite it with the shard.
  for (const shard of [0, 1]) {
    const keys: string[] = [];
    for await (const s of readTarSamples(shardPaths(fixture.dataset, shard).tar)) keys.push(s.key);
    const tokens = Int32Array.from({ length: keys.length * 16 }, (_, i) => i % 64);
    const file = cacheShardPath(fixture.dataset, 'vq', 'vq-test', shard);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, tableBytes(tokenTable({ keys, tokens, gridH: 4, gridW: 4, codebookSize: 64, vqId: 'test' })));
  }
  // Opt out three samples by URL, in both shards.
  const ok = fixture.rows.filter((r) => r.status === 'ok');
  const index = openIndex(fixture.dataRoot);
  new OptoutStore(index).addUrls([ok[1].url, ok[7].url, ok.find((r) => r.key.startsWith('00001'))!.url]);
  index.close();
});

const copy = () => copyDataRoot(fixture.dataRoot, 'rewriters');

const apply = (dataRoot: string, opts = {}) => runCli('muse-data', ['optout', 'apply', '--data-root', dataRoot], opts);
const dedupApply = (dataRoot: string, opts = {}) =>
  runCli('muse-data', ['dedup', 'sample', '--apply', '--phash-distance', DISTANCE, '--data-root', dataRoot], opts);

/** sha256 of every file of the dataset folder by relative path (the lock file is gone once both are done). */
async function contents(dataset: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of await readdir(dataset, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const file = path.join(e.parentPath, e.name);
    out[path.relative(dataset, file)] = createHash('sha256')
      .update(await readFile(file))
      .digest('hex');
  }
  return out;
}

/** Every cache file is non-empty and reads as Arrow; no temporary file is left. */
async function assertCachesWhole(dataset: string): Promise<void> {
  for (const rel of Object.keys(await contents(dataset))) {
    assert.ok(!rel.endsWith('.tmp'), `no temporary file left: ${rel}`);
    if (!rel.startsWith('tokens') && !rel.startsWith('text')) continue;
    const bytes = await readFile(path.join(dataset, rel));
    assert.ok(bytes.length > 0, `${rel} is not empty`);
    assert.doesNotThrow(() => tableFromIPC(bytes), `${rel} reads as Arrow`);
  }
}

async function assertOk(...runs: CliRun[]): Promise<void> {
  for (const r of runs) {
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /ENOENT|^\s+at /m);
  }
}

test("two optout apply processes at once: the second waits for the first, the result is one apply's", async () => {
  const seq = await copy();
  await assertOk(await apply(seq.dataRoot));
  const expected = await contents(seq.dataset);

  const { dataRoot, dataset } = await copy();
  // Hold the lock until both processes wait on it, so they contend for it however the machine schedules them.
  const release = await lockDataset(dataset, 'test holder');
  const waits = [false, false];
  const [a, b] = [0, 1].map((i) =>
    apply(dataRoot, { onStderr: (text: string) => void (waits[i] ||= text.includes('waiting for it to finish')) }),
  );
  for (let t = 0; !(waits[0] && waits[1]) && t < 600; t++) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(waits, [true, true], 'both wait while another command holds the lock');
  await release();
  const [ra, rb] = await Promise.all([a, b]);
  await assertOk(ra, rb);
  for (const r of [ra, rb])
    assert.match(r.stderr, /is being rewritten by `test holder` \(pid \d+ on .*, since .*\): waiting for it to finish/);
  assert.ok(!existsSync(lockPath(dataset)), 'the lock is released');
  await assertCachesWhole(dataset);
  assert.deepEqual(await contents(dataset), expected, 'byte-identical to one apply');
});

test('dedup --apply and optout apply started at once: both finish, the dataset equals the two run one after the other', async () => {
  // The two orders can differ (an opted-out sample that was a duplicate's kept original frees that duplicate), so
  // the result must be one of them: the second command waited for the first, or started after it.
  const sequential = async (first: typeof apply, second: typeof apply) => {
    const seq = await copy();
    await assertOk(await first(seq.dataRoot));
    await assertOk(await second(seq.dataRoot));
    const files = await contents(seq.dataset);
    delete files['dedup.arrow'];
    return files;
  };
  const dedupFirst = await sequential(dedupApply, apply);
  const optoutFirst = await sequential(apply, dedupApply);

  const { dataRoot, dataset } = await copy();
  const [rd, ro] = await Promise.all([dedupApply(dataRoot), apply(dataRoot)]);
  await assertOk(rd, ro);
  assert.match(rd.stdout, /phash [1-9]/, 'the sample has near duplicates to remove');
  const waited = [rd, ro].filter((r) => /is being rewritten by `(dedup --apply|optout apply)`/.test(r.stderr));
  assert.ok(waited.length <= 1, 'at most one of them waits');
  assert.ok(!existsSync(lockPath(dataset)));
  await assertCachesWhole(dataset);
  const got = await contents(dataset);
  delete got['dedup.arrow'];
  if (!isDeepStrictEqual(got, optoutFirst))
    assert.deepEqual(got, dedupFirst, 'byte-identical to dedup --apply then optout apply, or the other order');
});
