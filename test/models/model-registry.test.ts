/**
 * One parser for `model.vq` / `--vq` / sampling.json `vq` (src/models/registry.ts): the built-in VQGAN's id
 * `vqgan-tiny-seed0` works in every place that takes a VQ spec (tokenize's loader and its --image-size check,
 * training's cache lookup, sampling.json's written form and token-size lookup, the sampler's checkpoint loader),
 * and a folder spec is a folder everywhere.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { initBackend } from '../../src/runtime/backend.ts';
import {
  BUILTIN_VQ_ID,
  absoluteVqSpec,
  isBuiltinVq,
  loadVq,
  parseVqSpec,
  vqCodebookSize,
  vqReductionFactor,
} from '../../src/models/registry.ts';
import { resolveVqCacheId } from '../../src/train/muse/cache-ids.ts';
import { loadCheckpoint } from '../../src/sample/load.ts';
import { MaskGitTransformer } from '../../src/models/transformer/index.ts';
import { tinyTransformerConfig } from '../helpers/tiny-checkpoint.ts';
import { tokenizeHandler } from '../../src/cli/tokenize-command.ts';
import { readCacheManifest } from '../../src/dataset/cache-format.ts';

const BUILTIN_NAMES = [undefined, '', 'builtin', BUILTIN_VQ_ID];
let tmp: string;

before(async () => {
  await initBackend('wasm', { quiet: true });
  tmp = await mkdtemp(path.join(os.tmpdir(), 'muse-registry-'));
});

test('parseVqSpec: the built-in names and folders', () => {
  for (const s of BUILTIN_NAMES) assert.deepEqual(parseVqSpec(s), { kind: 'builtin' }, String(s));
  assert.deepEqual(parseVqSpec('models/my-vq'), { kind: 'folder', dir: 'models/my-vq' });
  assert.equal(isBuiltinVq(BUILTIN_VQ_ID), true);
  assert.equal(isBuiltinVq('./vqgan-tiny-seed0/'), false);
  assert.equal(absoluteVqSpec(BUILTIN_VQ_ID), 'builtin');
  assert.equal(absoluteVqSpec('builtin'), 'builtin');
  assert.equal(absoluteVqSpec('rel/vq'), path.resolve('rel/vq'));
});

test(`${BUILTIN_VQ_ID} loads the built-in VQGAN and gives the same cache id as 'builtin'`, async () => {
  const a = await loadVq(BUILTIN_VQ_ID);
  const b = await loadVq('builtin');
  try {
    assert.equal(a.id, BUILTIN_VQ_ID);
    assert.equal(a.weightsSha256, b.weightsSha256);
    assert.equal(a.gridH, 8);
  } finally {
    a.model.dispose();
    b.model.dispose();
  }
});

test(`${BUILTIN_VQ_ID}: training finds its token cache and its pixels per token`, async () => {
  const ds = path.join(tmp, 'ds');
  await mkdir(path.join(ds, 'tokens', BUILTIN_VQ_ID), { recursive: true });
  await mkdir(path.join(ds, 'tokens', 'vq-0123456789ab'), { recursive: true });
  for (const s of ['builtin', BUILTIN_VQ_ID]) assert.equal(await resolveVqCacheId(ds, s, null), BUILTIN_VQ_ID);
  assert.equal(await vqReductionFactor(BUILTIN_VQ_ID), 8);
  assert.equal(await vqReductionFactor('builtin'), 8);
  await assert.rejects(vqReductionFactor(path.join(tmp, 'no-such-vq')), /model\.vq: cannot read .*config\.json/);
  // Both read the one VQ config: the built-in's, or a folder's config.json (open-muse keys).
  assert.equal(await vqCodebookSize(BUILTIN_VQ_ID), 256);
  const folder = path.join(tmp, 'vq-folder');
  await mkdir(folder, { recursive: true });
  await writeFile(path.join(folder, 'config.json'), JSON.stringify({ channel_mult: [1, 2, 2], num_embeddings: 1024 }));
  assert.deepEqual([await vqReductionFactor(folder), await vqCodebookSize(folder)], [4, 1024]);
  await assert.rejects(vqCodebookSize(path.join(tmp, 'no-such-vq')), /model\.vq: cannot read .*config\.json/);
});

test(`${BUILTIN_VQ_ID} in sampling.json: the sampler loads the built-in VQGAN`, async () => {
  const ckpt = path.join(tmp, 'ckpt');
  const t = new MaskGitTransformer(
    { ...tinyTransformerConfig({ classes: 3 }), codebook_size: 256, num_vq_tokens: 64, max_position_embeddings: 65 },
    { seed: 1 },
  );
  try {
    await t.save(path.join(ckpt, 'transformer'));
  } finally {
    t.dispose();
  }
  const info = {
    vq: BUILTIN_VQ_ID,
    text_encoder: null,
    text_max_length: null,
    class_conditional: true,
    resolution: 64,
    grid: [8, 8],
    prompts: [],
  };
  await writeFile(path.join(ckpt, 'sampling.json'), JSON.stringify(info));
  const ck = await loadCheckpoint(ckpt);
  try {
    assert.equal(ck.vq.tokensPerImage, 64);
    assert.equal(ck.vq.config.numEmbeddings, 256);
  } finally {
    ck.dispose();
  }
});

test(`tokenize --vq ${BUILTIN_VQ_ID} --image-size is accepted; a folder with --image-size is refused`, async () => {
  const ds = path.join(tmp, 'empty-ds');
  await mkdir(path.join(ds, 'shards'), { recursive: true });
  const args = {
    dataset: ds,
    text: 'byt5-tiny',
    batch: 4,
    workers: 1,
    backend: 'wasm',
    'image-size': 32,
    'include-fallbacks': false,
    'data-root': tmp,
  };
  await assert.rejects(
    tokenizeHandler({ ...args, vq: path.join(tmp, 'some-vq') }),
    /--image-size applies to the built-in VQGAN only/,
  );
  assert.equal(await tokenizeHandler({ ...args, vq: BUILTIN_VQ_ID }), 0);
  const m = await readCacheManifest(path.join(ds, 'tokens', `${BUILTIN_VQ_ID}-32px`));
  assert.equal(m?.model.name, BUILTIN_VQ_ID);
});
