// The webgpu backend (Dawn via the `webgpu` package) against the cpu / wasm backends and the reference
// fixtures (the parity set: helpers/parity-suite.ts). In CI (process.env.CI set) it runs on Mesa lavapipe, which `.ci/run` installs, and a missing
// adapter fails the test; elsewhere the tests skip, saying why. lavapipe is a CPU rasteriser, so every model
// here is small. Reads are all asynchronous: dataSync() does not work on webgpu under Node.
import { webgpuSkip } from '../helpers/backend.ts';
import { on, parityTests } from '../helpers/parity-suite.ts';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/runtime/backend.ts';
import { assertGpuBufferFits, currentAdapter } from '../../src/runtime/webgpu.ts';

const root = path.resolve(import.meta.dirname, '../..');

const unavailable = await webgpuSkip();
if (unavailable) console.log(`# webgpu tests skipped: ${unavailable}`);
const gpuTest = (name: string, fn: () => Promise<void>) =>
  test(name, { skip: unavailable ? unavailable.slice(0, 300) : false }, fn);

parityTests('webgpu', unavailable);

gpuTest(
  'webgpu: the adapter is reported (vendor, architecture, software or not, limits); buffer limits give a clear error',
  async () => {
    await on('webgpu', async () => {
      const choice = await initBackend('webgpu', { quiet: true });
      assert.equal(choice.name, 'webgpu');
      const a = choice.adapter!;
      assert.ok(a, 'the choice carries the adapter');
      assert.equal(currentAdapter(), a);
      assert.ok(a.vendor || a.description, 'the adapter is named');
      assert.equal(typeof a.software, 'boolean');
      assert.ok(a.maxBufferSize > 0 && a.maxStorageBufferBindingSize > 0);
      console.log(`# webgpu adapter: ${JSON.stringify(a)}`);
      assert.throws(
        () => assertGpuBufferFits(a.maxStorageBufferBindingSize, 2, 'the test tensor', 'the test setting'),
        /the test tensor needs one .* MiB GPU buffer .* lower the test setting \(at most 1 fit\)/,
      );
      assertGpuBufferFits(1024, 2, 'a small tensor', 'nothing');
    });
  },
);

test('--backend webgpu with no adapter: says what was looked for and how to get one, exit 2, nothing written', async () => {
  const { spawnSync } = await import('node:child_process');
  const { existsSync, mkdtempSync, readdirSync, rmSync } = await import('node:fs');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'muse-noadapter-'));
  // Pointing the Vulkan loader at a driver list that does not exist hides every adapter, lavapipe included.
  const env = {
    ...process.env,
    VK_ICD_FILENAMES: path.join(dir, 'none.json'),
    VK_DRIVER_FILES: path.join(dir, 'none.json'),
  };
  try {
    const runs: Array<[string, string[]]> = [
      [
        'muse-train',
        [
          path.join(root, 'bin/muse-train.js'),
          '--stage',
          'tiny',
          '--backend',
          'webgpu',
          '--out',
          path.join(dir, 'run'),
        ],
      ],
      [
        'demo',
        [
          '--import',
          'tsx',
          path.join(root, 'src/demo/main.ts'),
          '--backend',
          'webgpu',
          '--out',
          path.join(dir, 'demo'),
        ],
      ],
    ];
    for (const [name, args] of runs) {
      const r = spawnSync(process.execPath, args, { cwd: root, env, encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, 2, `${name}: exit code (stderr: ${r.stderr})`);
      assert.match(r.stderr, /no WebGPU adapter was found/, name);
      assert.match(r.stderr, /Vulkan driver/, `${name}: says what was looked for`);
      assert.match(r.stderr, /mesa-vulkan-drivers/, `${name}: says how to get one`);
    }
    assert.ok(
      !existsSync(path.join(dir, 'run')) && !existsSync(path.join(dir, 'demo')),
      `nothing written: ${readdirSync(dir)}`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
