import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, mkdir, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CheckpointStore, checkpointDirName } from '../../src/run-folder/index.ts';

async function tmpRoot(): Promise<string> {
  return path.join(await mkdtemp(path.join(os.tmpdir(), 'train-core-ckpt-')), 'checkpoints');
}

/** The trainer's part: a model folder and an optimizer file whose contents depend on the step. */
const writer = (step: number) => async (dir: string) => {
  await mkdir(path.join(dir, 'transformer'));
  await writeFile(path.join(dir, 'transformer', 'model.safetensors'), Buffer.alloc(1000 + step, step % 251));
  await writeFile(path.join(dir, 'optimizer.safetensors'), `opt-${step}`);
};

test('save writes verified, hashed checkpoints, lists them, rotates and maintains latest', async () => {
  const root = await tmpRoot();
  const store = new CheckpointStore(root, { keepLast: 2 });
  assert.deepEqual(await store.list(), []);
  assert.equal(await store.resolve('latest', () => assert.fail('no warning expected')), null);
  const dir = await store.save(10, writer(10), { rng: 'abc', step: 999, loader: { epoch: 1 } });
  assert.equal(dir, path.join(root, 'step-00000010'));
  const st = JSON.parse(await readFile(path.join(dir, 'trainer_state.json'), 'utf8'));
  assert.equal(st.step, 10, 'the step argument wins over state.step');
  assert.equal(st.rng, 'abc');
  assert.deepEqual(st.loader, { epoch: 1 });
  const optBytes = Buffer.from('opt-10');
  assert.deepEqual(st.files['optimizer.safetensors'], {
    bytes: optBytes.length,
    sha256: createHash('sha256').update(optBytes).digest('hex'),
  });
  assert.equal(st.files['transformer/model.safetensors'].bytes, 1010);
  assert.deepEqual(Object.keys(st.files).sort(), ['optimizer.safetensors', 'transformer/model.safetensors']);
  assert.equal(await store.verify(dir), null);
  assert.equal((await readFile(path.join(root, 'latest'), 'utf8')).trim(), 'step-00000010');

  await store.save(20, writer(20), {});
  await store.save(30, writer(30), {});
  assert.deepEqual(
    (await store.list()).map((c) => c.step),
    [20, 30],
    'keepLast 2 removed step 10',
  );
  assert.equal((await readFile(path.join(root, 'latest'), 'utf8')).trim(), 'step-00000030');
  assert.deepEqual((await readdir(root)).sort(), ['latest', 'step-00000020', 'step-00000030'], 'no tmp leftovers');
  const r = await store.resolve('latest', () => assert.fail('no warning expected'));
  assert.equal(r?.dir, path.join(root, 'step-00000030'));
  assert.equal(r?.state.step, 30);
  // saving an existing step replaces it
  await store.save(
    30,
    async (d) => {
      await writeFile(path.join(d, 'x.bin'), 'new');
    },
    {},
  );
  assert.deepEqual(Object.keys((await store.resolve('latest', () => undefined))!.state.files as object), ['x.bin']);
  assert.equal(checkpointDirName(123456789), 'step-123456789');
});

test('corruption: verify names the file, latest falls back with a warning, an explicit corrupt dir throws', async () => {
  const root = await tmpRoot();
  const store = new CheckpointStore(root, { keepLast: 5 });
  for (const s of [1, 2, 3]) await store.save(s, writer(s), { s });
  const d3 = path.join(root, 'step-00000003');
  const d2 = path.join(root, 'step-00000002');
  // flip a byte in step 3's model, truncate step 2's optimizer file
  const model3 = path.join(d3, 'transformer', 'model.safetensors');
  const buf = await readFile(model3);
  buf[500] ^= 0xff;
  await writeFile(model3, buf);
  await truncate(path.join(d2, 'optimizer.safetensors'), 2);
  assert.match((await store.verify(d3))!, /transformer\/model\.safetensors: sha256 mismatch/);
  assert.match((await store.verify(d2))!, /optimizer\.safetensors: 2 bytes, 5 expected/);
  const warnings: string[] = [];
  const r = await store.resolve('latest', (m) => warnings.push(m));
  assert.equal(r?.dir, path.join(root, 'step-00000001'));
  assert.equal(r?.state.s, 1);
  assert.equal(warnings.length, 2);
  assert.match(warnings[0], /step-00000003 is corrupt.*sha256 mismatch/);
  assert.match(warnings[1], /step-00000002 is corrupt.*bytes/);
  await assert.rejects(
    store.resolve(d3, () => undefined),
    /step-00000003 is corrupt: .*model\.safetensors: sha256 mismatch/,
  );
  await assert.rejects(
    store.resolve('step-00000002', () => undefined),
    /step-00000002 is corrupt/,
  );
  assert.equal((await store.resolve('step-00000001', () => undefined))?.state.step, 1, 'a name under root resolves');
  await assert.rejects(
    store.resolve(path.join(root, 'nope'), () => undefined),
    /no such directory/,
  );
  // a missing file and a broken trainer_state.json
  await rm(path.join(root, 'step-00000001', 'optimizer.safetensors'));
  assert.match((await store.verify(path.join(root, 'step-00000001')))!, /optimizer\.safetensors: missing/);
  await writeFile(path.join(d3, 'trainer_state.json'), '{"step": 3, "files"');
  assert.match((await store.verify(d3))!, /trainer_state\.json: not valid JSON/);
  await assert.rejects(
    store.resolve('latest', () => undefined),
    /all 3 are corrupt/,
  );
});

test('a stale tmp dir from a crash is ignored by list and removed by the next save', async () => {
  const root = await tmpRoot();
  const store = new CheckpointStore(root, { keepLast: 3 });
  await store.save(1, writer(1), {});
  // a crashed save: partial files, no trainer_state.json, owner process long gone
  const stale = path.join(root, '.tmp-step-00000002-999999999');
  await mkdir(stale);
  await writeFile(path.join(stale, 'optimizer.safetensors'), 'partial');
  // a crash after the rename but before trainer_state.json cannot happen; a bare dir is not listed either
  assert.deepEqual(
    (await store.list()).map((c) => c.step),
    [1],
  );
  await store.save(2, writer(2), {});
  assert.deepEqual((await readdir(root)).sort(), ['latest', 'step-00000001', 'step-00000002']);
  // a failing writer leaves nothing behind and keeps latest
  await assert.rejects(
    store.save(
      3,
      async () => {
        throw new Error('disk full');
      },
      {},
    ),
    /disk full/,
  );
  assert.deepEqual((await readdir(root)).sort(), ['latest', 'step-00000001', 'step-00000002']);
  assert.equal((await readFile(path.join(root, 'latest'), 'utf8')).trim(), 'step-00000002');
  assert.throws(() => new CheckpointStore(root, { keepLast: 0 }), /keepLast/);
});
