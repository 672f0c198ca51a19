/**
 * Bad input, command by command: each row runs a command line in this process (test/helpers/cli-in-process.ts)
 * and states the exit code and the words its message must contain: the input it names, what is wrong. A new
 * command or flag gets the same treatment by adding rows. Rows need no network and no model download; a row that
 * needs files gets them from `setup` (a fresh temporary folder each).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runInProcess } from '../helpers/cli-in-process.ts';
import { jobModelSpecs } from '../../src/queue/tokenize-through-queue.ts';
import { BUILTIN_VQ_ID } from '../../src/models/registry.ts';
import { writeSyntheticCaches } from '../helpers/synthetic-cache.ts';
import { spawnSync } from 'node:child_process';
import { vulkanLoaderFound } from '../../src/runtime/webgpu.ts';
import { buildServer } from '../../src/server/app.ts';

interface Row {
  /** What the row is about (the test's name). */
  what: string;
  command: Parameters<typeof runInProcess>[0];
  /** The arguments; `dir` is a fresh temporary folder prepared by `setup`. */
  argv: (dir: string) => string[];
  setup?: (dir: string) => Promise<void>;
  status: number;
  /** Each must occur in stderr (a string; `{dir}` stands for the folder) or match it (a RegExp). */
  says: Array<string | RegExp>;
}

const train = (...sets: string[]) => ['--stage', 'tiny', ...sets.flatMap((s) => ['--set', s])];

/** A dataset with token caches (4x4 tokens of 64 codes, ids 0..63) and 256-wide text states (byt5-tiny's width). */
async function tokenized(dir: string): Promise<void> {
  await mkdir(path.join(dir, 'data', 'shards'), { recursive: true });
  await writeSyntheticCaches(path.join(dir, 'data'), { shards: { 0: 12, 1: 12 }, gridH: 4, gridW: 4, codebookSize: 64, dim: 256 });
}
/** muse-train on that dataset with a small model; `sets` change it. */
const trainOn = (dir: string, ...sets: string[]) => [
  '--stage', 'tiny', '--backend', 'cpu', '--out', path.join(dir, 'run'),
  ...[`data.path=${path.join(dir, 'data')}`, 'data.vq_id=vq-test', 'data.text_id=text-test', 'training.batch_size=4', 'training.max_steps=1', 'sampling.prompts=[]',
    'model.transformer={codebook_size: 64, num_vq_tokens: 16, max_position_embeddings: 16, hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, ' +
      'intermediate_size: 64, add_cross_attention: true, encoder_hidden_size: 256}', ...sets].flatMap((x) => ['--set', x]),
];

export const ROWS: Row[] = [
  // muse-train: model against data and VQGAN, checked before the first step (both sides named)
  { what: 'the matching model (the control: the rows below change one thing)', command: 'muse-train', setup: tokenized, argv: (d) => trainOn(d), status: 0,
    says: ['muse-train: stage tiny'] },
  { what: 'a codebook larger than the VQGAN\'s', command: 'muse-train', setup: tokenized, argv: (d) => trainOn(d, 'model.transformer.codebook_size=512'), status: 1,
    says: ['model.transformer.codebook_size is 512, but the VQGAN (model.vq builtin) has 256 codes'] },
  { what: 'a codebook smaller than the tokens in the cache', command: 'muse-train', setup: tokenized, argv: (d) => trainOn(d, 'model.transformer.codebook_size=32'), status: 1,
    says: [/token cache .*tokens\/vq-test\/00000\.arrow holds token id 63, but model\.transformer\.codebook_size is 32/] },
  { what: 'encoder_hidden_size other than the text cache width', command: 'muse-train', setup: tokenized, argv: (d) => trainOn(d, 'model.transformer.encoder_hidden_size=16'), status: 1,
    says: ['model.transformer.encoder_hidden_size is 16, but the text cache text/text-test has width 256'] },
  { what: 'num_vq_tokens other than the cache grid', command: 'muse-train', setup: tokenized,
    argv: (d) => trainOn(d, 'model.transformer.num_vq_tokens=64', 'model.transformer.max_position_embeddings=64'), status: 1,
    says: ['model.transformer.num_vq_tokens is 64, but the token cache', 'has 4x4 = 16 tokens per image'] },
  { what: 'a truncated token cache file', command: 'muse-train',
    setup: async (d) => { await tokenized(d); await truncate(path.join(d, 'data', 'tokens', 'vq-test', '00000.arrow'), 100); },
    argv: (d) => trainOn(d), status: 1, says: ['{dir}/data/tokens/vq-test/00000.arrow: truncated', 'muse-data verify'] },

  // muse-data: the data root and its index
  { what: 'serve --data-root that does not exist (a typo)', command: 'muse-data', argv: (d) => ['serve', '--data-root', path.join(d, 'datsets'), '--port', '0'], status: 2,
    says: ['--data-root {dir}/datsets: no such folder', 'serve does not create a data root'] },
  { what: 'a corrupt index.sqlite', command: 'muse-data', setup: (d) => writeFile(path.join(d, 'index.sqlite'), 'x'.repeat(4096)),
    argv: (d) => ['optout', 'list', '--data-root', d], status: 1, says: ['the index {dir}/index.sqlite cannot be used', 'file is not a database'] },
  { what: 'fetch --name with a slash', command: 'muse-data', argv: (d) => ['fetch', 'sample', '--name', 'a/b', '--data-root', d], status: 1,
    says: ['--name "a/b": a dataset name is letters, digits'] },
  // muse-train: the model sections are checked against the architecture's keys like every other section
  { what: 'a typo under model.transformer', command: 'muse-train', argv: () => train('model.transformer.hiden_size=64'), status: 1,
    says: ["unknown key 'model.transformer.hiden_size'", "did you mean 'model.transformer.hidden_size'"] },
  { what: 'a typo under model.vqgan', command: 'muse-train', argv: () => train('model.vqgan.num_embedings=8'), status: 1,
    says: ["unknown key 'model.vqgan.num_embedings'", "did you mean 'model.vqgan.num_embeddings'"] },
  { what: 'a string hidden_size', command: 'muse-train', argv: () => train('model.transformer.hidden_size="64"'), status: 1,
    says: ['model.transformer.hidden_size must be number, got "64"'] },
  { what: 'model.transformer=null', command: 'muse-train', argv: () => train('model.transformer=null'), status: 1,
    says: ['model.transformer must be a mapping of model config keys, got null'] },
  { what: 'a uvit key under the transformer architecture', command: 'muse-train', argv: () => train('model.transformer.micro_cond_embed_dim=8'), status: 1,
    says: ["unknown key 'model.transformer.micro_cond_embed_dim'"] },
  { what: 'a key from a config file under model.transformer', command: 'muse-train',
    setup: (dir) => writeFile(path.join(dir, 'c.yaml'), 'stage: tiny\nmodel:\n  transformer:\n    num_hidden_layer: 2\n'),
    argv: (dir) => ['--config', path.join(dir, 'c.yaml')], status: 1,
    says: ['{dir}/c.yaml', "unknown key 'model.transformer.num_hidden_layer'", "did you mean 'model.transformer.num_hidden_layers'"] },
  { what: 'a wrong list type under model.vqgan', command: 'muse-train', argv: () => train('model.vqgan.channel_mult=[a, b]'), status: 1,
    says: ['model.vqgan.channel_mult must be number[] or number, got ["a","b"]'] },
];

for (const row of ROWS) {
  test(`${row.command} ${row.what}: exit ${row.status}, names the input`, async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'muse-bad-input-'));
    await row.setup?.(dir);
    const r = await runInProcess(row.command, row.argv(dir));
    assert.equal(r.status, row.status, `exit code; stderr: ${r.stderr}`);
    for (const s of row.says) {
      if (typeof s === 'string') assert.ok(r.stderr.includes(s.replaceAll('{dir}', dir)), `stderr says ${JSON.stringify(s)}; got: ${r.stderr}`);
      else assert.match(r.stderr, s);
    }
    assert.doesNotMatch(r.stderr, /^\s+at .*:\d+:\d+\)?$/m, 'no stack trace for bad input');
  });
}

test('tokenize --queue: a built-in VQGAN by name reaches the workers as the built-in, a folder as an absolute path', () => {
  for (const name of ['builtin', BUILTIN_VQ_ID]) assert.equal(jobModelSpecs(name, []).vq, 'builtin', name);
  assert.equal(jobModelSpecs(undefined, []).vq, undefined);
  assert.equal(jobModelSpecs('models/vq', []).vq, path.resolve('models/vq'));
  assert.deepEqual(jobModelSpecs(undefined, ['byt5-tiny', 't5:models/t5']).text, ['byt5-tiny', `t5:${path.resolve('models/t5')}`]);
});

test("--backend auto says in one line which backend it chose, with no Dawn trace when there is no Vulkan loader", { skip: vulkanLoaderFound() && 'this machine has a Vulkan loader: Dawn probes it' }, () => {
  const backend = path.resolve(import.meta.dirname, '../..', 'src', 'runtime', 'backend.ts');
  // Without a native TensorFlow build: where one exists, TensorFlow prints its own start-up notices (oneDNN) before
  // any log level can be set (docs/backends.md); this checks our probe, which must print nothing but its one line.
  const env = { ...process.env, MUSE_TENSORFLOW_BUILD: path.join(os.tmpdir(), 'muse-no-tensorflow-build') };
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', `const { initBackend } = await import(${JSON.stringify(backend)}); await initBackend('auto');`], { encoding: 'utf8', env });
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /Vulkan: libvulkan|BackendVk\.cpp/);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^tfjs backend: \S+.* via .*webgpu \(hardware adapter\): no Vulkan loader/);
});

/** The web API's bad input: [method, url, content type, body] -> status and words of the JSON error. */
const HTTP_ROWS: Array<{ what: string; method: 'GET' | 'POST'; url: string; type?: string; body?: string | Buffer; status: number; says: RegExp }> = [
  { what: 'an unknown key in a JSON body', method: 'POST', url: '/api/optout/requests', type: 'application/json', body: '{"urls": ["http://a.example/x.jpg"], "admin": true}',
    status: 400, says: /body has an unknown key "admin"/ },
  { what: 'image bytes posted to a JSON route', method: 'POST', url: '/api/optout/requests', type: 'image/png', body: Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 0]),
    status: 400, says: /POST \/api\/optout\/requests takes a JSON body \(content type application\/json\), not "image\/png"/ },
  { what: 'an unknown query parameter', method: 'GET', url: '/api/optout/lookup?url=http%3A%2F%2Fa.example%2Fx.jpg&sort=new', status: 400, says: /unknown parameter "sort"/ },
  { what: 'a query parameter on a route that takes none', method: 'GET', url: '/api/datasets?sort=name', status: 400, says: /unknown parameter "sort" \(GET \/api\/datasets takes no query parameters\)/ },
  { what: 'a query parameter on a page that takes none', method: 'GET', url: '/optout?debug=1', status: 400, says: /unknown parameter "debug"/ },
];

test('serve: bad requests are answered 4xx with a message naming what is wrong', async () => {
  const app = await buildServer({ dataRoot: await mkdtemp(path.join(os.tmpdir(), 'muse-bad-http-')) });
  try {
    for (const row of HTTP_ROWS) {
      const r = await app.inject({ method: row.method, url: row.url, payload: row.body, headers: row.type ? { 'content-type': row.type } : {} });
      assert.equal(r.statusCode >= 400 && r.statusCode < 500, true, `${row.what}: ${r.statusCode} ${r.body}`);
      if (row.status) assert.equal(r.statusCode, row.status, `${row.what}: ${r.body}`);
      assert.match(JSON.parse(r.body).error, row.says, row.what);
    }
  } finally {
    await app.close();
  }
});
