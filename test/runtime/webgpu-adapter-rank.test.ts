// Which WebGPU adapter a data-parallel rank opens: Dawn's adapter list parsed from its message, the k-th hardware
// adapter for local rank k, MUSE_WEBGPU_ADAPTER per rank, and the refusals (fewer GPUs than ranks, identical names).
// The choice is pure logic, tested without a GPU; the listing itself runs on whatever Dawn finds here (lavapipe in CI).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { adapterForLocalRank, listAdapters, parseAdapterList, vulkanLoaderFound } from '../../src/runtime/webgpu.ts';

const LISTED =
  "no suitable backends found\nAvailable adapters:\n * backend: 'vulkan', name: 'NVIDIA GeForce RTX 4090'\n" +
  " * backend: 'vulkan', name: 'AMD Radeon RX 7900 XTX (RADV NAVI31)'\n * backend: 'vulkan', name: 'llvmpipe (LLVM 15.0.6, 256 bits)'";
const adapters = parseAdapterList(LISTED);

test("Dawn's adapter list is parsed in its order", () => {
  assert.deepEqual(
    adapters.map((a) => a.name),
    ['NVIDIA GeForce RTX 4090', 'AMD Radeon RX 7900 XTX (RADV NAVI31)', 'llvmpipe (LLVM 15.0.6, 256 bits)'],
  );
  assert.ok(adapters.every((a) => a.backend === 'vulkan'));
  assert.deepEqual(parseAdapterList('no suitable backends found'), []);
});

test("local rank k takes the k-th hardware adapter (software ones skipped); one rank keeps Dawn's default", () => {
  assert.equal(adapterForLocalRank(adapters, 0, 2, {}).name, 'NVIDIA GeForce RTX 4090');
  assert.equal(adapterForLocalRank(adapters, 1, 2, {}).name, 'AMD Radeon RX 7900 XTX (RADV NAVI31)');
  assert.equal(adapterForLocalRank(adapters, 0, 1, {}).name, undefined);
  // Only a software adapter (CI's lavapipe): all ranks share it, nothing is set.
  assert.equal(adapterForLocalRank(adapters.slice(2), 1, 2, {}).name, undefined);
});

test('MUSE_WEBGPU_ADAPTER, set per rank, wins', () => {
  const pick = adapterForLocalRank(adapters, 1, 2, { MUSE_WEBGPU_ADAPTER: 'NVIDIA GeForce RTX 4090' });
  assert.equal(pick.name, 'NVIDIA GeForce RTX 4090');
  assert.match(pick.note, /MUSE_WEBGPU_ADAPTER/);
});

test('fewer GPUs than ranks, or identical GPUs Dawn cannot tell apart by name: refused with what to do', () => {
  assert.throws(
    () => adapterForLocalRank(adapters, 2, 3, {}),
    /3 ranks on this machine but 2 WebGPU adapters .*one rank per GPU/,
  );
  const twins = parseAdapterList(
    " * backend: 'vulkan', name: 'NVIDIA H100 80GB HBM3'\n * backend: 'vulkan', name: 'NVIDIA H100 80GB HBM3'",
  );
  assert.throws(
    () => adapterForLocalRank(twins, 1, 2, {}),
    /selects adapters by name and 2 of them are named so.*--backend tensorflow/,
  );
});

test(
  'listAdapters asks Dawn itself (each listed adapter has a backend and a name)',
  { skip: process.platform === 'linux' && !vulkanLoaderFound() ? 'no Vulkan loader here' : false },
  async () => {
    const listed = await listAdapters();
    for (const a of listed) assert.ok(a.backend && a.name, JSON.stringify(a));
    // Mesa's lavapipe installed (as CI does): Dawn lists it.
    if (existsSync('/usr/share/vulkan/icd.d/lvp_icd.json'))
      assert.ok(
        listed.some((a) => /llvmpipe|lavapipe/i.test(a.name)),
        JSON.stringify(listed),
      );
  },
);
