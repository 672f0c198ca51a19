/**
 * One rewriter per dataset (src/dataset/lock.ts): `optout apply` waits while another command holds the dataset's
 * lock and then does its work once; a lock left by a killed process is taken over; one held on another host is
 * waited for with a message naming the file to delete.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { deepMerge, loadPipelineFile, resolvePipeline } from '../../src/pipeline/config.ts';
import { runFetch } from '../../src/pipeline/run-fetch.ts';
import { readManifest } from '../../src/dataset/manifest.ts';
import { lockDataset, lockPath } from '../../src/dataset/lock.ts';
import { openIndex } from '../../src/index-db/db.ts';
import { OptoutStore } from '../../src/optout/store.ts';
import { applyOptouts } from '../../src/optout/apply.ts';

const root = path.resolve(import.meta.dirname, '../..');

test('optout apply waits for the dataset lock, then removes the opted-out sample once', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'muse-lock-'));
  const dataset = path.join(dir, 'sample');
  const dataRoot = path.join(dir, 'root');
  const file = path.join(root, 'pipelines', 'sample.yaml');
  const cfg = resolvePipeline(deepMerge(await loadPipelineFile(file), { samples_per_shard: 8 }), file);
  await runFetch({ cfg, datasetDir: dataset, dataRoot, projectRoot: root, workers: 1, logFormat: 'json', shards: '0' });
  const victim = (await readManifest(path.join(dataset, 'shards', '00000.arrow'))).find((r) => r.status === 'ok')!;
  const index = openIndex(dataRoot);
  try {
    new OptoutStore(index).addUrls([victim.url]);
    const release = await lockDataset(dataset, 'test holder');
    const waits: string[] = [];
    let done = false;
    const applying = applyOptouts(index, index.datasets(), { progress: (m) => waits.push(m) }).then(
      (r) => ((done = true), r),
    );
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(done, false, 'apply does not run while another command holds the lock');
    assert.match(waits.join('\n'), /is being rewritten by `test holder` \(pid \d+ on .*\): waiting for it to finish/);
    assert.equal(
      (await readManifest(path.join(dataset, 'shards', '00000.arrow'))).find((r) => r.key === victim.key)!.status,
      'ok',
    );
    await release();
    const [res] = await applying;
    assert.equal(res.removed, 1);
    assert.equal(
      (await readManifest(path.join(dataset, 'shards', '00000.arrow'))).find((r) => r.key === victim.key)!.status,
      'opted_out',
    );
    assert.ok(!existsSync(lockPath(dataset)), 'the lock is released');
  } finally {
    index.close();
  }
});

test('a lock left by a killed process is taken over; one from another host is waited for, naming the file', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'muse-lock-'));
  // a pid that is gone: a child that has exited
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  const stale = {
    pid: Number(dead.stdout),
    host: os.hostname(),
    command: 'optout apply',
    since: '2026-01-01T00:00:00Z',
    token: 'old',
  };
  await writeFile(lockPath(dir), JSON.stringify(stale));
  const release = await lockDataset(dir, 'tokenize');
  assert.equal(JSON.parse(await readFile(lockPath(dir), 'utf8')).command, 'tokenize');
  await release();

  await writeFile(lockPath(dir), JSON.stringify({ ...stale, host: 'elsewhere.example', pid: 1 }));
  const waits: string[] = [];
  const taking = lockDataset(dir, 'dedup --apply', { onWait: (m) => waits.push(m), pollMs: 20 });
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(waits.length, 1);
  assert.match(
    waits[0],
    new RegExp(
      `\`optout apply\` \\(pid 1 on elsewhere\\.example.*if that process is gone, delete ${lockPath(dir).replace(/[.]/g, '\\.')}`,
    ),
  );
  await rm(lockPath(dir)); // the operator deletes it

  await (
    await taking
  )();
});
