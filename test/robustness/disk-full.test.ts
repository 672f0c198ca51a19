/**
 * A full disk during `tokenize`: on a small tmpfs (where this process may mount one: root), else with the second
 * shard's cache file pointed at /dev/full (an injected ENOSPC). The error names the file and says to free space;
 * the caches already written stay whole; a rerun with space completes and equals an uninterrupted run.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, readdir, rm, statfs, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { deepMerge, loadPipelineFile, resolvePipeline } from '../../src/pipeline/config.ts';
import { runFetch } from '../../src/pipeline/run-fetch.ts';
import { cacheShardPath } from '../../src/dataset/cache-format.ts';
import { PROJECT_ROOT } from '../../src/dataset/data-root.ts';
import { runInProcess } from '../helpers/cli-in-process.ts';

const TEXT_ID = 'byt5-tiny-local-seed0';
const tokenize = (dataset: string) =>
  runInProcess('muse-data', ['tokenize', dataset, '--backend', 'wasm', '--data-root', path.dirname(dataset)]);

/** Every cache file of `dataset` (tokens/, text/) by relative path. */
async function caches(dataset: string): Promise<Record<string, Buffer>> {
  const out: Record<string, Buffer> = {};
  for (const top of ['tokens', 'text']) {
    const dir = path.join(dataset, top);
    if (!existsSync(dir)) continue;
    for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
      if (e.isFile())
        out[path.relative(dataset, path.join(e.parentPath, e.name))] = await readFile(path.join(e.parentPath, e.name));
    }
  }
  return out;
}

/** A small tmpfs at a fresh folder, or the reason there is none. */
function mountTmpfs(dir: string, bytes: number): string | null {
  if (process.getuid?.() !== 0) return 'not root: cannot mount a tmpfs';
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir], { encoding: 'utf8' });
  return r.status === 0 ? null : `mount -t tmpfs failed: ${(r.stderr || r.error?.message || '').trim()}`;
}

const mounted: string[] = [];
after(() => {
  for (const dir of mounted) spawnSync('umount', [dir]);
});

test('disk full during tokenize: the file is named, written caches stay whole, a rerun with space equals an uninterrupted run', async (t) => {
  const base = await mkdtemp(path.join(os.tmpdir(), 'muse-disk-full-'));
  const source = path.join(base, 'source', 'sample');
  const file = path.join(PROJECT_ROOT, 'pipelines', 'sample.yaml');
  const cfg = resolvePipeline(deepMerge(await loadPipelineFile(file), { samples_per_shard: 4 }), file);
  await runFetch({
    cfg,
    datasetDir: source,
    dataRoot: path.dirname(source),
    projectRoot: PROJECT_ROOT,
    workers: 1,
    logFormat: 'json',
    shards: '0-1',
  });

  // The uninterrupted run, on a disk with room.
  const reference = path.join(base, 'reference', 'sample');
  await cp(source, reference, { recursive: true });
  const whole = await tokenize(reference);
  assert.equal(whole.status, 0, whole.stderr);
  const expected = await caches(reference);
  const shard1Text = path.relative(reference, cacheShardPath(reference, 'text', TEXT_ID, 1));
  assert.ok(expected[shard1Text], "the reference has the second shard's text cache");

  // The full disk: room for the first shard's caches, not for the second's.
  const disk = path.join(base, 'disk');
  await mkdir(disk);
  const noMount = mountTmpfs(disk, 16 * 1024 * 1024);
  if (!noMount) mounted.push(disk);
  const dataset = path.join(disk, 'sample');
  await cp(source, dataset, { recursive: true });
  const full = noMount ? cacheShardPath(dataset, 'text', TEXT_ID, 1) : path.join(disk, 'filler');
  if (noMount) {
    t.diagnostic(`${noMount}; injecting ENOSPC through /dev/full instead`);
    await mkdir(path.dirname(full), { recursive: true });
    await symlink('/dev/full', `${full}.tmp`);
  } else {
    const total = Object.values(expected).reduce((n, b) => n + b.length, 0);
    const { bavail, bsize } = await statfs(disk);
    // Leave free what the caches need, less half of the second shard's text cache.
    await writeFile(
      full,
      Buffer.alloc(Math.max(0, bavail * bsize - total + Math.floor(expected[shard1Text].length / 2))),
    );
  }

  const cut = await tokenize(dataset);
  assert.equal(cut.status, 1, cut.stderr);
  t.diagnostic(`${noMount ? 'injected' : 'tmpfs'}: ${cut.stderr.trim().split('\n').at(-1)}`);
  assert.match(cut.stderr, /: disk full \(ENOSPC/);
  assert.match(cut.stderr, new RegExp(`${dataset}/(text|tokens)/\\S+: disk full`), 'the file is named');
  assert.match(cut.stderr, /free space and rerun/);
  assert.doesNotMatch(cut.stderr, /^\s+at /m, 'no stack trace');
  // What was written is whole: each cache file there is the reference's, byte for byte; nothing half-written.
  const partial = await caches(dataset);
  for (const [rel, bytes] of Object.entries(partial)) {
    if (rel.endsWith('manifest.json')) continue; // the cache's own list of shards, rewritten as shards complete
    assert.ok(!rel.endsWith('.tmp'), `no temporary file left: ${rel}`);
    assert.deepEqual(bytes, expected[rel], `${rel} is whole`);
  }
  assert.ok(!partial[shard1Text], "the second shard's text cache was not put in place");

  // Space again: the rerun completes and equals the uninterrupted run.
  await rm(noMount ? `${full}.tmp` : full, { force: true });
  const rerun = await tokenize(dataset);
  assert.equal(rerun.status, 0, rerun.stderr);
  assert.deepEqual(Object.keys(await caches(dataset)).sort(), Object.keys(expected).sort());
  for (const [rel, bytes] of Object.entries(await caches(dataset))) {
    if (!rel.endsWith('manifest.json')) assert.deepEqual(bytes, expected[rel], rel);
  }
});
