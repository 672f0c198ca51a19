import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { onBackend } from '../helpers/backend.ts';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.ts';
import { loadCheckpoint, resolveCheckpointDir } from '../../src/sample/load.ts';
import { CheckpointStore } from '../../src/run-folder/index.ts';
import { sample } from '../../src/sample/sample.ts';
import { sampleGridForTraining } from '../../src/sample/for-training.ts';
import { outputPaths, slug } from '../../src/cli/sample-command.ts';
import { runCli } from '../helpers/cli.ts';

let tmp: string;
let ckpt: string;

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'muse-sample-'));
  await onBackend('wasm', async () => {
    ckpt = await writeTinyCheckpoint(path.join(tmp, 'text'));
  });
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const cli = (args: string[]) => runCli('muse-sample', args, { cwd: tmp });

const size = async (f: string | Buffer) => {
  const m = await sharp(f).metadata();
  return [m.width, m.height];
};

test('muse-sample end to end: files, sizes, same seed -> identical bytes, --out x.png layout, --no-ema', async () => {
  const args = [
    '--checkpoint',
    ckpt,
    '--prompt',
    'a red circle on a blue background',
    '--prompt',
    'a <white> star & "more"',
    '--num',
    '2',
    '--steps',
    '3',
    '--seed',
    '5',
    '--backend',
    'wasm',
  ];
  const out1 = path.join(tmp, 'out1');
  const r1 = await cli([...args, '--out', out1, '--save-intermediate']);
  assert.equal(r1.code, 0, r1.stderr);
  const names = (await readdir(out1)).sort();
  assert.deepEqual(names, [
    '0-a-red-circle-on-a-blue-background.png',
    '1-a-red-circle-on-a-blue-background.png',
    '2-a-white-star-more.png',
    '3-a-white-star-more.png',
    'grid.png',
    'steps',
  ]);
  for (const n of names.filter((x) => x.endsWith('.png') && x !== 'grid.png'))
    assert.deepEqual(await size(path.join(out1, n)), [32, 32]);
  // 4 images of 32 px: 2x2 cells, each scaled x4 to 128 px plus a 50 px caption band.
  assert.deepEqual(await size(path.join(out1, 'grid.png')), [2 * 128, 2 * (128 + 50)]);
  assert.equal((await readdir(path.join(out1, 'steps'))).length, 4 * 3);
  assert.deepEqual(await size(path.join(out1, 'steps', '0-step0.png')), [32, 32]);
  // The two copies of a prompt differ (different PRNG streams).
  assert.notDeepEqual(await readFile(path.join(out1, names[0])), await readFile(path.join(out1, names[1])));

  const gridPng = path.join(tmp, 'run2', 'grid-x.png');
  const r2 = await cli([...args, '--out', gridPng]);
  assert.equal(r2.code, 0, r2.stderr);
  assert.ok(existsSync(gridPng));
  const singles = path.join(tmp, 'run2', 'grid-x');
  for (const n of names.filter((x) => x.endsWith('.png') && x !== 'grid.png')) {
    assert.deepEqual(
      await readFile(path.join(singles, n)),
      await readFile(path.join(out1, n)),
      `${n} is byte-identical`,
    );
  }
  assert.deepEqual(await readFile(gridPng), await readFile(path.join(out1, 'grid.png')));

  const r3 = await cli([...args, '--out', path.join(tmp, 'out3'), '--no-ema']);
  assert.equal(r3.code, 0, r3.stderr);
  assert.match(r3.stderr, /raw weights/);
  assert.notDeepEqual(await readFile(path.join(tmp, 'out3', names[0])), await readFile(path.join(out1, names[0])));
});

test('muse-sample errors: missing checkpoint exits 1 with the path, bad flags exit 2', async () => {
  const r = await cli(['--checkpoint', path.join(tmp, 'nope'), '--out', path.join(tmp, 'x')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /muse-sample: --checkpoint .*nope: no such directory/);
  const u = await cli(['--checkpoint', ckpt, '--out', path.join(tmp, 'x'), '--temperature', 'hot']);
  assert.equal(u.code, 2);
  assert.match(u.stderr, /--temperature 'hot'/);
  const v = await cli(['--checkpoint', ckpt, '--out', path.join(tmp, 'x'), '--bogus']);
  assert.equal(v.code, 2);
  const pf = await cli([
    '--checkpoint',
    ckpt,
    '--prompts',
    path.join(tmp, 'missing.txt'),
    '--out',
    path.join(tmp, 'x'),
    '--backend',
    'cpu',
  ]);
  assert.equal(pf.code, 1);
  assert.match(pf.stderr, /--prompts .*missing.txt: cannot read/);
  const c = await cli(['--checkpoint', ckpt, '--class', '1', '--out', path.join(tmp, 'x'), '--backend', 'cpu']);
  assert.equal(c.code, 1);
  assert.match(c.stderr, /--class needs a class-conditional checkpoint/);
});

test('run directories resolve to the verified latest checkpoint (the one --resume latest takes)', async () => {
  const runDir = path.join(tmp, 'run');
  const store = new CheckpointStore(path.join(runDir, 'checkpoints'), { keepLast: 5 });
  for (const step of [20, 5])
    await store.save(step, (dir) => writeFile(path.join(dir, 'w.bin'), `weights ${step}`), {});
  const ck = (step: number) => path.join(runDir, 'checkpoints', `step-${String(step).padStart(8, '0')}`);
  const warnings: string[] = [];
  const warn = (m: string) => warnings.push(m);
  assert.equal(await resolveCheckpointDir(runDir, warn), ck(5), 'the checkpoint latest names');
  await writeFile(path.join(ck(5), 'w.bin'), 'damaged');
  assert.equal(await resolveCheckpointDir(runDir, warn), ck(20), 'a corrupt latest is skipped');
  assert.match(warnings.join('\n'), /step-00000005 is corrupt.*w\.bin/);
  await writeFile(path.join(runDir, 'checkpoints', 'latest'), 'step-99');
  assert.equal(
    await resolveCheckpointDir(runDir, warn),
    ck(20),
    'latest naming no checkpoint: the newest that verifies',
  );
  await writeFile(path.join(ck(20), 'w.bin'), 'damaged too');
  await assert.rejects(resolveCheckpointDir(runDir, warn), /all 2 are corrupt/);
  await assert.rejects(resolveCheckpointDir(tmp, warn), /neither a checkpoint/);
  assert.equal(slug('  A Red -- Circle!! '), 'a-red-circle');
  assert.deepEqual(outputPaths('/x/y/grid.PNG'), { grid: '/x/y/grid.PNG', imagesDir: '/x/y/grid' });
});

test('sample(): inpainting keeps the init image tokens; class-conditional checkpoints; the trainer grid hook', async () => {
  await onBackend('wasm', async () => {
    const ck = await loadCheckpoint(ckpt);
    try {
      assert.equal(ck.weights, 'ema');
      // Init image: left half red, right half blue; mask: keep (black) the left half.
      const res = 32;
      const px = Buffer.alloc(res * res * 3);
      for (let y = 0; y < res; y++)
        for (let x = 0; x < res; x++) px.set(x < 16 ? [220, 20, 30] : [30, 70, 220], (y * res + x) * 3);
      const m = Buffer.alloc(res * res);
      for (let y = 0; y < res; y++) for (let x = 0; x < res; x++) m[y * res + x] = x < 16 ? 0 : 255;
      const image = await sharp(px, { raw: { width: res, height: res, channels: 3 } })
        .png()
        .toBuffer();
      const mask = await sharp(m, { raw: { width: res, height: res, channels: 1 } })
        .png()
        .toBuffer();
      const expected = await (async () => {
        const { tf } = await import('../../src/runtime/backend.ts');
        const t = ck.vq.encode(
          tf.div(tf.tensor4d(new Float32Array(px), [1, res, res, 3]), 255) as import('@tensorflow/tfjs').Tensor4D,
        );
        const d = new Int32Array(await t.data());
        t.dispose();
        return d;
      })();
      const r = await sample({
        checkpoint: ck,
        prompts: ['a red circle on a blue background'],
        steps: 3,
        seed: 1,
        init: { image, mask },
      });
      const ids = r.images[0].ids;
      for (let ty = 0; ty < 4; ty++)
        for (let tx = 0; tx < 2; tx++) assert.equal(ids[ty * 4 + tx], expected[ty * 4 + tx]);
      const changed = [2, 3].some((tx) => [0, 1, 2, 3].some((ty) => ids[ty * 4 + tx] !== expected[ty * 4 + tx]));
      assert.ok(changed, 'the masked half was regenerated');
    } finally {
      ck.dispose();
    }

    const clsCkpt = await writeTinyCheckpoint(path.join(tmp, 'cls'), { classes: 3 });
    const r = await sample({ checkpoint: clsCkpt, classIds: [0, 2], steps: 2, seed: 3 });
    assert.deepEqual(
      r.images.map((i) => i.prompt),
      ['class 0', 'class 2'],
    );
    await assert.rejects(sample({ checkpoint: clsCkpt, classIds: [0], guidance: 3 }), /only guidance 1 is supported/);
    await assert.rejects(sample({ checkpoint: clsCkpt, classIds: [5] }), /--class 5/);

    const grid = path.join(tmp, 'samples', 'step-1.png');
    await sampleGridForTraining(ckpt, grid, {
      prompts: ['a', 'b', 'c'],
      class_ids: [],
      steps: 2,
      guidance: 2,
      temperature: 1,
      seed: 0,
    });
    assert.deepEqual(await size(grid), [2 * 128, 2 * 178]);
  });
});
