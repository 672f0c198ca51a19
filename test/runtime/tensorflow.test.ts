// The native 'tensorflow' backend (tfjs-node's binding compiled against the TensorFlow 2.21 wheel's C API by
// `npm run build:tensorflow`) against the cpu / wasm backends and the reference fixtures (helpers/parity-suite.ts),
// tensor counts over many training steps, and the build's and the backend's answers to bad input. In CI
// (process.env.CI set) .ci/run builds it and a missing build fails the tests; elsewhere they skip, saying why.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { skipUnlessAvailable } from '../helpers/system-component.ts';
import { on, parityTests } from '../helpers/parity-suite.ts';
import { initBackend } from '../../src/runtime/backend.ts';
import { BUILD_COMMAND } from '../../src/runtime/tensorflow/build-dir.ts';
import { buildTensorflow } from '../../src/runtime/tensorflow/build.ts';
import { checkWheelName } from '../../src/runtime/tensorflow/source.ts';
import { shareTensorflowThreads, tensorflowThreads } from '../../src/runtime/tensorflow/load.ts';
import { loadTrainConfig } from '../../src/train/config/load.ts';
import { MaskGitTransformer } from '../../src/models/transformer/index.ts';
import { MuseTrainer } from '../../src/train/muse/trainer.ts';
import type { Batch } from '../../src/train/data/batch.ts';
import { runCli } from '../helpers/cli.ts';

const root = path.resolve(import.meta.dirname, '../..');

async function tensorflowAvailable(): Promise<string | undefined> {
  try {
    await initBackend('tensorflow', { quiet: true });
    return undefined;
  } catch (err) {
    return (err as Error).message;
  } finally {
    await tf.setBackend('cpu');
  }
}
const unavailable = skipUnlessAvailable(
  'tensorflow',
  await tensorflowAvailable(),
  "npm run build:tensorflow -- --pip 'tensorflow-cpu==2.21.0'",
);
if (unavailable) console.log(`# tensorflow tests skipped: ${unavailable}`);

parityTests('tensorflow', unavailable);

// MUSE_TF_MEMORY_STEPS=1000 for the full count (~30 s); 300 keeps the suite short.
const MEMORY_STEPS = Number(process.env.MUSE_TF_MEMORY_STEPS ?? 300);

test(
  `tensorflow: tf.memory() stays flat over ${MEMORY_STEPS} training steps (tensors and bytes)`,
  { skip: unavailable ? unavailable.slice(0, 300) : false },
  async () => {
    const cfg = loadTrainConfig({
      stage: 'tiny',
      configsDir: path.join(root, 'configs'),
      sets: [
        'training.batch_size=2',
        'ema.update_after_step=2',
        'lr_scheduler.warmup_steps=0',
        'model.transformer.hidden_size=32',
        'model.transformer.intermediate_size=64',
        'model.transformer.num_hidden_layers=1',
      ],
    });
    const B = 2;
    const batch: Batch = {
      size: B,
      epoch: 0,
      keys: ['a', 'b'],
      imageIds: Int32Array.from({ length: B * 64 }, (_, i) => (i * 37) % 256),
      imageShape: [B, 64],
      gridH: 8,
      gridW: 8,
      textHidden: Float32Array.from({ length: B * 6 * 256 }, (_, i) => Math.sin(i)),
      textShape: [B, 6, 256],
      textMask: new Uint8Array(B * 6).fill(1),
      textLengths: Int32Array.from([6, 6]),
    };
    await on('tensorflow', async () => {
      const model = new MaskGitTransformer(cfg.model.transformer, { seed: 1 });
      const trainer = new MuseTrainer(model, cfg);
      try {
        let after: tf.MemoryInfo | undefined;
        for (let step = 0; step < MEMORY_STEPS; step++) {
          await trainer.step(batch, step);
          if (step === 2) after = tf.memory();
        }
        const end = tf.memory();
        assert.equal(end.numTensors, after!.numTensors, 'tensors grew');
        assert.equal(end.numBytes, after!.numBytes, 'bytes grew');
      } finally {
        trainer.dispose();
        model.dispose();
      }
    });
  },
);

test('--backend tensorflow with nothing built: exit 2 naming the build command, nothing written; --backends says why', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'muse-nobuild-'));
  const env = { ...process.env, MUSE_TENSORFLOW_BUILD: path.join(dir, 'none') };
  try {
    const r = await runCli(
      'muse-train',
      ['--stage', 'tiny', '--backend', 'tensorflow', '--out', path.join(dir, 'run')],
      { cwd: root, env, timeoutMs: 60_000 },
    );
    assert.equal(r.code, 2, `exit code (stderr: ${r.stderr})`);
    assert.ok(
      r.stderr.includes('no native TensorFlow build') && r.stderr.includes('npm run build:tensorflow'),
      r.stderr,
    );
    assert.ok(!existsSync(path.join(dir, 'run')), 'nothing written');
    const l = await runCli('muse-train', ['--backends'], { cwd: root, env, timeoutMs: 60_000 });
    assert.equal(l.code, 0, l.stderr);
    assert.match(l.stdout, /^tensorflow +unavailable +no native TensorFlow build .*npm run build:tensorflow/m);
    assert.match(l.stdout, /^wasm +available/m);
    assert.match(l.stdout, /^cpu +available/m);
    assert.match(l.stdout, /^auto +-> (webgpu|wasm)/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('build:tensorflow refuses a wrong wheel by its name before reading it, naming what it found', () => {
  const ok = 'tensorflow_cpu-2.21.0-cp311-cp311-manylinux_2_27_x86_64.whl';
  if (process.arch === 'x64' && process.platform === 'linux') assert.equal(checkWheelName(ok).version, '2.21.0');
  const cases: Array<[string, RegExp]> = [
    ['tensorflow-2.21.0-cp311-cp311-macosx_12_0_arm64.whl', /a wheel for macosx_12_0_arm64, but this machine is linux/],
    ['tensorflow_cpu-2.21.0-cp311-cp311-win_amd64.whl', /a wheel for win_amd64/],
    ['tensorflow_cpu-2.8.0-cp310-cp310-manylinux2010_x86_64.whl', /TensorFlow 2\.8\.0 is too old: .* 2\.9 or newer/],
    ['tensorflow-2.21.0-py3-none-any.whl', /pure-Python wheel .* has no TensorFlow library/],
    ['numpy-2.1.0-cp311-cp311-manylinux_2_17_x86_64.whl', /a wheel of 'numpy', not of TensorFlow/],
    ['tensorflow.zip', /not a wheel file name/],
  ];
  for (const [name, want] of cases) assert.throws(() => checkWheelName(name), want, name);
});

test(
  'build:tensorflow: a wheel without libtensorflow_cc.so.2 fails inside the temp folder; the previous build stays',
  { skip: !spawnSync('python3', ['--version']).stdout && 'python3 (to write a zip) is missing' },
  async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'muse-badwheel-'));
    try {
      const build = path.join(dir, 'native', 'tensorflow');
      mkdirSync(build, { recursive: true });
      writeFileSync(path.join(build, 'build.json'), '{"tensorflow":"previous"}');
      const lib = path.join(dir, 'tensorflow', 'libtensorflow_framework.so.2');
      mkdirSync(path.dirname(lib));
      writeFileSync(lib, 'not a library');
      const wheel = path.join(
        dir,
        `tensorflow_cpu-2.21.0-cp311-cp311-manylinux_2_27_${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}.whl`,
      );
      const z = spawnSync('python3', ['-m', 'zipfile', '-c', wheel, path.join(dir, 'tensorflow')], {
        encoding: 'utf8',
      });
      assert.equal(z.status, 0, z.stderr);
      await assert.rejects(
        buildTensorflow({ wheel, dir: build, log: () => undefined }),
        /no tensorflow\/libtensorflow_cc\.so\.2 in the wheel \(TensorFlow libraries found: tensorflow\/libtensorflow_framework\.so\.2\)/,
      );
      assert.equal(
        readFileSync(path.join(build, 'build.json'), 'utf8'),
        '{"tensorflow":"previous"}',
        'the previous build is untouched',
      );
      assert.deepEqual(readdirSync(path.dirname(build)), ['tensorflow'], 'no temp folder left');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'build:tensorflow --python: a Python without TensorFlow is named with its version and the pip command',
  { skip: !spawnSync('python3', ['--version']).stdout && 'python3 is missing' },
  async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'muse-notf-'));
    try {
      // python3 -S: no site-packages, so no TensorFlow even where CI installed one.
      const python = path.join(dir, 'python-without-site');
      writeFileSync(python, '#!/bin/sh\nexec python3 -S "$@"\n', { mode: 0o755 });
      await assert.rejects(
        buildTensorflow({ python, dir: path.join(dir, 'build'), log: () => undefined }),
        /--python .*: Python 3\.\d+\.\d+ has no 'tensorflow' package \(.* -m pip install 'tensorflow-cpu==2\.21\.0'/,
      );
      await assert.rejects(
        buildTensorflow({ python: path.join(dir, 'nope'), dir: path.join(dir, 'build'), log: () => undefined }),
        /--python .*nope: no such program/,
      );
      assert.ok(BUILD_COMMAND.startsWith('npm run build:tensorflow'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test('TensorFlow threads: every core by default, MUSE_TF_THREADS sets them, tokenize --workers N shares the cores', () => {
  const saved = process.env.MUSE_TF_THREADS;
  try {
    delete process.env.MUSE_TF_THREADS;
    assert.equal(tensorflowThreads().intra, os.availableParallelism());
    shareTensorflowThreads(1);
    assert.equal(process.env.MUSE_TF_THREADS, undefined, 'one process keeps every core');
    shareTensorflowThreads(os.availableParallelism() * 2);
    assert.equal(tensorflowThreads().intra, 1, 'more workers than cores: one thread each');
    process.env.MUSE_TF_THREADS = '3';
    shareTensorflowThreads(2);
    assert.deepEqual(tensorflowThreads(), { intra: 3, inter: 2 }, 'a value the user set wins');
    process.env.MUSE_TF_THREADS = 'many';
    assert.throws(() => tensorflowThreads(), /MUSE_TF_THREADS: expected a positive integer or 'all', got 'many'/);
  } finally {
    if (saved === undefined) delete process.env.MUSE_TF_THREADS;
    else process.env.MUSE_TF_THREADS = saved;
  }
});
