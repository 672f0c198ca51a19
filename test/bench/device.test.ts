// The GPU-day benchmark (bench/device/) dry-run here, so that it cannot rot before a GPU is lent: the esbuild
// bundle that the device machine runs is built and started with this node, at tiny sizes, on lavapipe (software
// Vulkan, as the webgpu tests) and wasm. Where no webgpu adapter is found the test skips (fails in CI).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/runtime/backend.ts';
import { webgpuSkip } from '../helpers/backend.ts';
import { bundleApp } from '../../bench/device/pack.ts';
import type { DeviceReport } from '../../bench/device/main.ts';

const root = path.resolve(import.meta.dirname, '../..');

const skip = await webgpuSkip();

const tmp = mkdtempSync(path.join(os.tmpdir(), 'muse-device-test-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));
let bundled: Promise<string> | undefined;
/** The device bundle, built once for the tests below. */
function app(): Promise<string> {
  bundled ??= bundleApp(path.join(tmp, 'app')).then(() => path.join(tmp, 'app', 'main.mjs'));
  return bundled;
}

function runBundle(main: string, out: string, args: string[]) {
  // From another folder: the bundle must not need the repository's node_modules.
  return spawnSync(process.execPath, [main, '--out', out, ...args], {
    cwd: os.tmpdir(),
    encoding: 'utf8',
    timeout: 170_000,
  });
}

test(
  'bench/device: the bundle runs every part at dry-run sizes and writes device.dry-run.json',
  { skip, timeout: 180_000 },
  async () => {
    const out = path.join(tmp, 'full');
    const r = runBundle(await app(), out, ['--dry-run']);
    assert.equal(r.status, 0, r.stderr);
    const report = JSON.parse(readFileSync(path.join(out, 'device.dry-run.json'), 'utf8')) as DeviceReport;
    assert.equal(report.dryRun, true);
    assert.deepEqual(
      report.parts.map((p) => p.name),
      ['probe', 'transformer-webgpu', 'vqgan-webgpu', 'vqgan-wasm', 'transformer-wasm'],
    );
    for (const p of report.parts) assert.ok(p.ok, `${p.name}: ${p.error}`);
    const probe = report.parts[0].result as {
      adapter: { description: string };
      info: { vendor: string };
      features: string[];
    };
    assert.ok(probe.adapter.description.length > 0 && probe.info.vendor.length > 0, 'the adapter is named');
    assert.ok(probe.features.length > 0);
    const wasm = report.parts.find((p) => p.name === 'transformer-wasm')!.result as {
      backend: string;
      threads: number;
      config: { hidden: number };
    };
    assert.equal(wasm.backend, 'wasm');
    assert.equal(wasm.threads, os.availableParallelism(), 'wasm runs on every core');
    assert.equal(wasm.config.hidden, report.sizes.transformer.hidden);
    const s = report.summary;
    for (const k of [
      'transformerStepMsWebgpu',
      'transformerStepMsWasm',
      'vqganImagesPerSecWebgpu',
      'vqganImagesPerSecWasm',
      'transformerWebgpuSpeedup',
      'vqganWebgpuSpeedup',
    ]) {
      assert.ok(typeof s[k] === 'number' && (s[k] as number) > 0, `${k} = ${s[k]}`);
    }
    assert.match(r.stdout, /\| transformerWebgpuSpeedup \|/);
  },
);

test(
  'bench/device: a part past its time is stopped, the rest are not started, and the report is still written',
  { timeout: 120_000 },
  async () => {
    const out = path.join(tmp, 'budget');
    // 420 s is the default budget and each part's cap scales with it: 6 s gives the probe under half a second.
    const r = runBundle(await app(), out, ['--dry-run', '--budget-s', '6']);
    assert.equal(r.status, 0, r.stderr);
    const report = JSON.parse(readFileSync(path.join(out, 'device.dry-run.json'), 'utf8')) as DeviceReport;
    assert.equal(report.parts[0].timedOut, true, JSON.stringify(report.parts[0]));
    assert.ok(
      report.parts.some((p) => /not run: the time budget was spent/.test(p.error ?? '')),
      JSON.stringify(report.parts),
    );
    assert.equal(report.summary.transformerStepMsWasm, undefined);
  },
);

test('bench/device: a bad --budget-s is refused by name; run.sh without the pack says how to make it', async () => {
  const r = runBundle(await app(), path.join(tmp, 'bad'), ['--budget-s', 'soon']);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /--budget-s: expected a positive number of seconds, got 'soon'/);
  const sh = spawnSync('bash', [path.join(root, 'bench', 'device', 'run.sh')], {
    cwd: tmp,
    encoding: 'utf8',
    env: { ...process.env, OUT: path.join(tmp, 'sh') },
  });
  assert.equal(sh.status, 2);
  assert.match(sh.stderr, /\.device\/muse-device\.tar\.xz is missing: run 'node --import tsx bench\/device\/pack\.ts'/);
  assert.ok(!existsSync(path.join(tmp, 'sh', 'device.json')));
});
