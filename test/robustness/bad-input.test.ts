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
import { onBackend } from '../helpers/backend.ts';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.ts';

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
  /** The same for stdout, where the command reports there (verify, optout). */
  printed?: Array<string | RegExp>;
}

/** A folder that passes for a dataset (a shards/ folder, nothing fetched): enough for the flag checks. */
const bareDataset = (dir: string) => mkdir(path.join(dir, 'ds', 'shards'), { recursive: true }).then(() => undefined);
/** Files the eval and sample rows point at: a text file, a prompt file, an empty folder, a folder standing for a checkpoint. */
async function files(dir: string): Promise<void> {
  await writeFile(path.join(dir, 'file.txt'), 'hello');
  await writeFile(path.join(dir, 'bad.npz'), 'PK not a zip');
  await writeFile(path.join(dir, 'prompts.txt'), 'a red circle\n');
  await mkdir(path.join(dir, 'empty'));
  await mkdir(path.join(dir, 'ckpt'));
}
const sample = (d: string, ...more: string[]) => [
  '--checkpoint',
  path.join(d, 'ckpt'),
  '--prompt',
  'x',
  '--out',
  path.join(d, 'out'),
  '--backend',
  'cpu',
  ...more,
];
/** A tiny text-conditioned checkpoint as muse-train saves it. */
async function textCheckpoint(dir: string): Promise<void> {
  await files(dir);
  await onBackend('wasm', async () => {
    await writeTinyCheckpoint(dir); // into <dir>/ckpt
  });
}

const train = (...sets: string[]) => ['--stage', 'tiny', ...sets.flatMap((s) => ['--set', s])];

/** A dataset with token caches (4x4 tokens of 64 codes, ids 0..63) and 256-wide text states (byt5-tiny's width). */
async function tokenized(dir: string): Promise<void> {
  await mkdir(path.join(dir, 'data', 'shards'), { recursive: true });
  await writeSyntheticCaches(path.join(dir, 'data'), {
    shards: { 0: 12, 1: 12 },
    gridH: 4,
    gridW: 4,
    codebookSize: 64,
    dim: 256,
  });
}
/** muse-train on that dataset with a small model; `sets` change it. */
const trainOn = (dir: string, ...sets: string[]) => [
  '--stage',
  'tiny',
  '--backend',
  'cpu',
  '--out',
  path.join(dir, 'run'),
  ...[
    `data.path=${path.join(dir, 'data')}`,
    'data.vq_id=vq-test',
    'data.text_id=text-test',
    'training.batch_size=4',
    'training.max_steps=1',
    'sampling.prompts=[]',
    'model.transformer={codebook_size: 64, num_vq_tokens: 16, max_position_embeddings: 16, hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, ' +
      'intermediate_size: 64, add_cross_attention: true, encoder_hidden_size: 256}',
    ...sets,
  ].flatMap((x) => ['--set', x]),
];

export const ROWS: Row[] = [
  // muse-train: model against data and VQGAN, checked before the first step (both sides named)
  {
    what: 'the matching model (the control: the rows below change one thing)',
    command: 'muse-train',
    setup: tokenized,
    argv: (d) => trainOn(d),
    status: 0,
    says: ['muse-train: stage tiny'],
  },
  {
    what: "a codebook larger than the VQGAN's",
    command: 'muse-train',
    setup: tokenized,
    argv: (d) => trainOn(d, 'model.transformer.codebook_size=512'),
    status: 1,
    says: ['model.transformer.codebook_size is 512, but the VQGAN (model.vq builtin) has 256 codes'],
  },
  {
    what: 'a codebook smaller than the tokens in the cache',
    command: 'muse-train',
    setup: tokenized,
    argv: (d) => trainOn(d, 'model.transformer.codebook_size=32'),
    status: 1,
    says: [
      /token cache .*tokens\/vq-test\/00000\.arrow holds token id 63, but model\.transformer\.codebook_size is 32/,
    ],
  },
  {
    what: 'encoder_hidden_size other than the text cache width',
    command: 'muse-train',
    setup: tokenized,
    argv: (d) => trainOn(d, 'model.transformer.encoder_hidden_size=16'),
    status: 1,
    says: ['model.transformer.encoder_hidden_size is 16, but the text cache text/text-test has width 256'],
  },
  {
    what: "cond_embed_dim other than the text cache's pooled width",
    command: 'muse-train',
    setup: async (d) => {
      await mkdir(path.join(d, 'data', 'shards'), { recursive: true });
      await writeSyntheticCaches(path.join(d, 'data'), {
        shards: { 0: 12, 1: 12 },
        gridH: 4,
        gridW: 4,
        codebookSize: 64,
        dim: 256,
        pooledDim: 16,
      });
    },
    argv: (d) => trainOn(d, 'model.transformer.add_cond_embeds=true', 'model.transformer.cond_embed_dim=8'),
    status: 1,
    says: [
      "model.transformer.cond_embed_dim is 8, but the text cache's pooled vector has width 16: set cond_embed_dim to 16",
    ],
  },
  {
    what: 'num_vq_tokens other than the cache grid',
    command: 'muse-train',
    setup: tokenized,
    argv: (d) => trainOn(d, 'model.transformer.num_vq_tokens=64', 'model.transformer.max_position_embeddings=64'),
    status: 1,
    says: ['model.transformer.num_vq_tokens is 64, but the token cache', 'has 4x4 = 16 tokens per image'],
  },
  {
    what: 'a truncated token cache file',
    command: 'muse-train',
    setup: async (d) => {
      await tokenized(d);
      await truncate(path.join(d, 'data', 'tokens', 'vq-test', '00000.arrow'), 100);
    },
    argv: (d) => trainOn(d),
    status: 1,
    says: ['{dir}/data/tokens/vq-test/00000.arrow: truncated', 'muse-data verify'],
  },

  // muse-data: the data root and its index
  {
    what: 'serve --data-root that does not exist (a typo)',
    command: 'muse-data',
    argv: (d) => ['serve', '--data-root', path.join(d, 'datsets'), '--port', '0'],
    status: 2,
    says: ['--data-root {dir}/datsets: no such folder', 'serve does not create a data root'],
  },
  {
    what: 'a corrupt index.sqlite',
    command: 'muse-data',
    setup: (d) => writeFile(path.join(d, 'index.sqlite'), 'x'.repeat(4096)),
    argv: (d) => ['optout', 'list', '--data-root', d],
    status: 1,
    says: ['the index {dir}/index.sqlite cannot be used', 'file is not a database'],
  },
  {
    what: 'fetch --name with a slash',
    command: 'muse-data',
    argv: (d) => ['fetch', 'sample', '--name', 'a/b', '--data-root', d],
    status: 1,
    says: ['--name "a/b": a dataset name is letters, digits'],
  },
  // muse-train: the model sections are checked against the architecture's keys like every other section
  {
    what: 'a typo under model.transformer',
    command: 'muse-train',
    argv: () => train('model.transformer.hiden_size=64'),
    status: 1,
    says: ["unknown key 'model.transformer.hiden_size'", "did you mean 'model.transformer.hidden_size'"],
  },
  {
    what: 'a typo under model.vqgan',
    command: 'muse-train',
    argv: () => train('model.vqgan.num_embedings=8'),
    status: 1,
    says: ["unknown key 'model.vqgan.num_embedings'", "did you mean 'model.vqgan.num_embeddings'"],
  },
  {
    what: 'a string hidden_size',
    command: 'muse-train',
    argv: () => train('model.transformer.hidden_size="64"'),
    status: 1,
    says: ['model.transformer.hidden_size must be number, got "64"'],
  },
  {
    what: 'model.transformer=null',
    command: 'muse-train',
    argv: () => train('model.transformer=null'),
    status: 1,
    says: ['model.transformer must be a mapping of model config keys, got null'],
  },
  {
    what: 'a uvit key under the transformer architecture',
    command: 'muse-train',
    argv: () => train('model.transformer.micro_cond_embed_dim=8'),
    status: 1,
    says: ["unknown key 'model.transformer.micro_cond_embed_dim'"],
  },
  {
    what: 'a key from a config file under model.transformer',
    command: 'muse-train',
    setup: (dir) =>
      writeFile(path.join(dir, 'c.yaml'), 'stage: tiny\nmodel:\n  transformer:\n    num_hidden_layer: 2\n'),
    argv: (dir) => ['--config', path.join(dir, 'c.yaml')],
    status: 1,
    says: [
      '{dir}/c.yaml',
      "unknown key 'model.transformer.num_hidden_layer'",
      "did you mean 'model.transformer.num_hidden_layers'",
    ],
  },
  {
    what: 'a wrong list type under model.vqgan',
    command: 'muse-train',
    argv: () => train('model.vqgan.channel_mult=[a, b]'),
    status: 1,
    says: ['model.vqgan.channel_mult must be number[] or number, got ["a","b"]'],
  },

  // muse-data dedup: flags are checked before the dataset is opened (exit 2, the flag named)
  {
    what: 'a dataset folder that does not exist',
    command: 'muse-data',
    argv: (d) => ['dedup', path.join(d, 'nope'), '--data-root', d],
    status: 1,
    says: ["no dataset '{dir}/nope': no such folder"],
  },
  {
    what: 'a folder that is not a fetched dataset',
    command: 'muse-data',
    argv: (d) => ['dedup', d, '--data-root', d],
    status: 1,
    says: ["no dataset '{dir}': has no shards/ folder", 'muse-data fetch'],
  },
  {
    what: 'a dataset name unknown under the data root',
    command: 'muse-data',
    argv: (d) => ['dedup', 'nope', '--data-root', d],
    status: 1,
    says: ["no dataset 'nope': neither", '{dir}/nope has a shards/ folder'],
  },
  {
    what: '--phash-distance out of range',
    command: 'muse-data',
    setup: bareDataset,
    argv: (d) => ['dedup', 'ds', '--data-root', d, '--phash-distance', '99'],
    status: 2,
    says: ['--phash-distance: expected an integer in 0..15', 'got 99'],
  },
  {
    what: '--phash-distance not a number',
    command: 'muse-data',
    setup: bareDataset,
    argv: (d) => ['dedup', 'ds', '--data-root', d, '--phash-distance', 'abc'],
    status: 2,
    says: ['--phash-distance: expected an integer in 0..15'],
  },
  {
    what: 'an unknown --kinds',
    command: 'muse-data',
    setup: bareDataset,
    argv: (d) => ['dedup', 'ds', '--data-root', d, '--kinds', 'url,foo'],
    status: 2,
    says: ['--kinds "url,foo": unknown dedup kind \'foo\' (kinds: url, sha256, pair, phash)'],
  },
  {
    what: 'an empty --kinds',
    command: 'muse-data',
    setup: bareDataset,
    argv: (d) => ['dedup', 'ds', '--data-root', d, '--kinds', ','],
    status: 2,
    says: ['--kinds ",": --kinds names no kind'],
  },
  {
    what: '--against a dataset the index does not know',
    command: 'muse-data',
    setup: bareDataset,
    argv: (d) => ['dedup', 'ds', '--data-root', d, '--against', 'other'],
    status: 1,
    says: ['--against other: no such dataset in the index'],
  },

  // muse-data verify
  {
    what: 'verify of a dataset with no caches (nothing verified: exit 1, not "all match")',
    command: 'muse-data',
    setup: bareDataset,
    argv: (d) => ['verify', 'ds', '--data-root', d],
    status: 1,
    says: [],
    printed: ['no caches in {dir}/ds (run muse-data tokenize)'],
  },
  {
    what: 'verify of a file',
    command: 'muse-data',
    setup: files,
    argv: (d) => ['verify', path.join(d, 'file.txt')],
    status: 1,
    says: ["no dataset '{dir}/file.txt': has no shards/ folder"],
  },

  // muse-data tokenize: flags (exit 2) before any model loads or cache folder is made
  {
    what: "tokenize --image-size that is not a multiple of the VQGAN's pixels per token",
    command: 'muse-data',
    setup: bareDataset,
    argv: (d) => ['tokenize', 'ds', '--data-root', d, '--image-size', '12'],
    status: 2,
    says: ['--image-size: expected pixels, a positive multiple of 8', 'got 12'],
  },
  {
    what: 'tokenize --image-size negative',
    command: 'muse-data',
    setup: bareDataset,
    argv: (d) => ['tokenize', 'ds', '--data-root', d, '--image-size', '-3'],
    status: 2,
    says: ['--image-size: expected pixels', 'got -3'],
  },
  {
    what: 'tokenize --batch 0',
    command: 'muse-data',
    setup: bareDataset,
    argv: (d) => ['tokenize', 'ds', '--data-root', d, '--batch', '0'],
    status: 2,
    says: ['--batch: expected a positive integer, got 0'],
  },
  {
    what: 'tokenize --workers 0',
    command: 'muse-data',
    setup: bareDataset,
    argv: (d) => ['tokenize', 'ds', '--data-root', d, '--workers', '0'],
    status: 2,
    says: ['--workers: expected a positive integer, got 0'],
  },
  {
    what: 'tokenize --shards that cannot be read',
    command: 'muse-data',
    setup: bareDataset,
    argv: (d) => ['tokenize', 'ds', '--data-root', d, '--shards', 'x-y', '--backend', 'cpu'],
    status: 1,
    says: ["--shards: cannot read 'x-y'"],
  },
  {
    what: 'tokenize --shards naming no complete shard (exit 1, not "0 shards tokenized")',
    command: 'muse-data',
    setup: async (d) => {
      await bareDataset(d);
      await writeFile(path.join(d, 'ds', 'shards', '00002_stats.json'), '{}');
    },
    argv: (d) => ['tokenize', 'ds', '--data-root', d, '--shards', '7-8'],
    status: 1,
    says: ['--shards 7-8: none of them is a complete shard of {dir}/ds (complete shards: 2)'],
  },
  {
    what: 'tokenize --vq folder that does not exist',
    command: 'muse-data',
    setup: bareDataset,
    argv: (d) => ['tokenize', 'ds', '--data-root', d, '--vq', path.join(d, 'novq'), '--backend', 'cpu'],
    status: 1,
    says: ['{dir}/novq: no such model folder'],
  },
  {
    what: 'tokenize --vq the same folder twice',
    command: 'muse-data',
    setup: bareDataset,
    argv: (d) => ['tokenize', 'ds', '--data-root', d, '--vq', 'a', '--vq', 'a'],
    status: 1,
    says: ['--vq a given twice'],
  },
  {
    what: 'tokenize --text an unknown encoder',
    command: 'muse-data',
    setup: bareDataset,
    argv: (d) => ['tokenize', 'ds', '--data-root', d, '--text', 'foo', '--backend', 'cpu'],
    status: 1,
    says: ["unknown text encoder 'foo'", 't5:DIR'],
  },

  // muse-data worker and queue (no Redis needed: the flags are checked first; port 1 refuses connections)
  {
    what: 'worker --queue that is not a redis:// URL',
    command: 'muse-data',
    argv: () => ['worker', '--queue', 'http://x'],
    status: 1,
    says: ["--queue: 'http://x' is not a redis:// URL"],
  },
  {
    what: 'worker --kinds unknown',
    command: 'muse-data',
    argv: () => ['worker', '--queue', 'redis://127.0.0.1:1', '--kinds', 'bogus'],
    status: 2,
    says: ["--kinds: expected one or more of fetch, tokenize (comma-separated), got 'bogus'"],
  },
  {
    what: 'worker --concurrency 0',
    command: 'muse-data',
    argv: () => ['worker', '--queue', 'redis://127.0.0.1:1', '--concurrency', '0'],
    status: 2,
    says: ['--concurrency: expected a positive integer, got 0'],
  },
  {
    what: 'worker --lock-duration 0',
    command: 'muse-data',
    argv: () => ['worker', '--queue', 'redis://127.0.0.1:1', '--lock-duration', '0'],
    status: 2,
    says: ['--lock-duration: expected seconds > 0, got 0'],
  },
  {
    what: 'queue with an unknown action',
    command: 'muse-data',
    argv: () => ['queue', 'bogus', '--queue', 'redis://127.0.0.1:1'],
    status: 2,
    says: ['Given: "bogus"', 'Choices: "status", "retry-failed", "clean"'],
  },
  {
    what: 'queue status without --queue',
    command: 'muse-data',
    argv: () => ['queue', 'status'],
    status: 2,
    says: ['Missing required argument: queue'],
  },
  {
    what: 'queue status --queue that cannot be read',
    command: 'muse-data',
    argv: () => ['queue', 'status', '--queue', 'notaurl'],
    status: 1,
    says: ["--queue: cannot read 'notaurl' (expected redis://HOST:PORT[/db])"],
  },
  {
    what: 'queue status when no Redis answers',
    command: 'muse-data',
    argv: () => ['queue', 'status', '--queue', 'redis://127.0.0.1:1'],
    status: 1,
    says: ['--queue redis://127.0.0.1:1: cannot reach Redis', 'is redis-server running there?'],
  },

  // muse-data optout (the index in <data root>/index.sqlite)
  {
    what: 'optout without an action',
    command: 'muse-data',
    argv: (d) => ['optout', '--data-root', d],
    status: 2,
    says: ['name an optout action: add, import, remove, list, check or apply'],
  },
  {
    what: 'optout with an unknown action (named alone, --data-root is known)',
    command: 'muse-data',
    argv: (d) => ['optout', 'bogus', '--data-root', d],
    status: 2,
    says: [/Unknown argument: bogus$/m],
  },
  {
    what: 'optout requests with an unknown action',
    command: 'muse-data',
    argv: (d) => ['optout', 'requests', 'bogus', '--data-root', d],
    status: 2,
    says: [/Unknown argument: bogus$/m],
  },
  {
    what: 'optout add without a URL',
    command: 'muse-data',
    argv: (d) => ['optout', 'add', '--data-root', d],
    status: 1,
    says: ['optout add: name at least one URL or --sha256 HEX'],
  },
  {
    what: 'optout add a string that is not a URL',
    command: 'muse-data',
    argv: (d) => ['optout', 'add', 'notaurl', '--data-root', d],
    status: 1,
    says: ['rejected: not a valid URL: "notaurl"'],
  },
  {
    what: 'optout add --sha256 that is not 64 hex digits',
    command: 'muse-data',
    argv: (d) => ['optout', 'add', '--sha256', 'xyz', '--data-root', d],
    status: 1,
    says: ['rejected: not a sha256 (64 hex digits): "xyz"'],
  },
  {
    what: 'optout import of a missing file',
    command: 'muse-data',
    argv: (d) => ['optout', 'import', path.join(d, 'missing.txt'), '--data-root', d],
    status: 1,
    says: ['optout import {dir}/missing.txt: no such file'],
  },
  {
    what: 'optout import of a folder',
    command: 'muse-data',
    argv: (d) => ['optout', 'import', d, '--data-root', d],
    status: 1,
    says: ['optout import {dir}: not a file'],
  },
  {
    what: 'optout check without a URL',
    command: 'muse-data',
    argv: (d) => ['optout', 'check', '--data-root', d],
    status: 1,
    says: ['optout check: name at least one URL or --sha256 HEX'],
  },
  {
    what: 'optout apply to a dataset the index does not know',
    command: 'muse-data',
    argv: (d) => ['optout', 'apply', 'nosuch', '--data-root', d],
    status: 1,
    says: ["no dataset 'nosuch' in {dir}/index.sqlite"],
  },
  {
    what: 'optout requests accept an id that does not exist',
    command: 'muse-data',
    argv: (d) => ['optout', 'requests', 'accept', '999', '--data-root', d],
    status: 1,
    says: ['request 999: no opt-out request 999'],
  },
  {
    what: 'optout requests reject an id that is not a number',
    command: 'muse-data',
    argv: (d) => ['optout', 'requests', 'reject', 'abc', '--data-root', d],
    status: 1,
    says: ['not ids: abc'],
  },
  {
    what: 'optout remove of a URL that is not opted out (reported, not an error)',
    command: 'muse-data',
    argv: (d) => ['optout', 'remove', 'http://never.example/x.jpg', '--data-root', d],
    status: 0,
    says: ['not opted out: http://never.example/x.jpg'],
    printed: ['removed 0 URL(s)'],
  },

  // muse-eval: the sets and model folders are checked before a backend or model loads
  {
    what: 'muse-eval without a command',
    command: 'muse-eval',
    argv: () => [],
    status: 2,
    says: ['name a command: fid, clip-score or run'],
  },
  {
    what: 'muse-eval with an unknown command',
    command: 'muse-eval',
    argv: () => ['bogus'],
    status: 2,
    says: ['Unknown argument: bogus'],
  },
  {
    what: 'fid --real that does not exist',
    command: 'muse-eval',
    setup: files,
    argv: (d) => ['fid', '--real', path.join(d, 'nope'), '--fake', path.join(d, 'empty'), '--backend', 'cpu'],
    status: 1,
    says: ['--real {dir}/nope: no such file or folder'],
  },
  {
    what: 'fid --fake a file that is not .npz',
    command: 'muse-eval',
    setup: files,
    argv: (d) => ['fid', '--real', path.join(d, 'empty'), '--fake', path.join(d, 'file.txt'), '--backend', 'cpu'],
    status: 1,
    says: ['--fake {dir}/file.txt: not a folder (of images, or a dataset) nor a .npz statistics file'],
  },
  {
    what: 'fid --num 0',
    command: 'muse-eval',
    setup: files,
    argv: (d) => ['fid', '--real', path.join(d, 'empty'), '--fake', path.join(d, 'empty'), '--num', '0'],
    status: 2,
    says: ['--num 0: expected an integer >= 1'],
  },
  {
    what: 'fid --resize unknown',
    command: 'muse-eval',
    setup: files,
    argv: (d) => ['fid', '--real', path.join(d, 'empty'), '--fake', path.join(d, 'empty'), '--resize', 'nearest'],
    status: 2,
    says: ['Given: "nearest"', 'Choices: "clean", "pytorch-fid"'],
  },
  {
    what: 'fid --real a damaged .npz',
    command: 'muse-eval',
    setup: files,
    argv: (d) => ['fid', '--real', path.join(d, 'bad.npz'), '--fake', path.join(d, 'empty'), '--backend', 'cpu'],
    status: 1,
    says: ['{dir}/bad.npz: not an .npz (zip) file'],
  },
  {
    what: 'fid of two empty folders',
    command: 'muse-eval',
    setup: files,
    argv: (d) => ['fid', '--real', path.join(d, 'empty'), '--fake', path.join(d, 'empty'), '--backend', 'cpu'],
    status: 1,
    says: ['{dir}/empty: 0 images; FID needs at least 2'],
  },
  {
    what: 'clip-score --prompts missing',
    command: 'muse-eval',
    setup: files,
    argv: (d) => [
      'clip-score',
      '--images',
      path.join(d, 'empty'),
      '--prompts',
      path.join(d, 'nope.txt'),
      '--clip',
      path.join(d, 'empty'),
      '--backend',
      'cpu',
    ],
    status: 1,
    says: ['{dir}/nope.txt: cannot read prompts'],
  },
  {
    what: 'clip-score --images missing',
    command: 'muse-eval',
    setup: files,
    argv: (d) => [
      'clip-score',
      '--images',
      path.join(d, 'nope'),
      '--prompts',
      path.join(d, 'prompts.txt'),
      '--clip',
      path.join(d, 'empty'),
      '--backend',
      'cpu',
    ],
    status: 1,
    says: ['--images {dir}/nope: no such file or folder'],
  },
  {
    what: 'clip-score --clip missing',
    command: 'muse-eval',
    setup: files,
    argv: (d) => [
      'clip-score',
      '--images',
      path.join(d, 'empty'),
      '--prompts',
      path.join(d, 'prompts.txt'),
      '--clip',
      path.join(d, 'noclip'),
      '--backend',
      'cpu',
    ],
    status: 1,
    says: ['--clip {dir}/noclip: no such directory'],
  },
  {
    what: 'run --checkpoint missing',
    command: 'muse-eval',
    setup: files,
    argv: (d) => [
      'run',
      '--checkpoint',
      path.join(d, 'nope'),
      '--prompts',
      path.join(d, 'prompts.txt'),
      '--out',
      path.join(d, 'out'),
      '--backend',
      'cpu',
    ],
    status: 1,
    says: ['--checkpoint {dir}/nope: no such directory'],
  },
  {
    what: 'run --checkpoint a folder that is neither a checkpoint nor a run',
    command: 'muse-eval',
    setup: files,
    argv: (d) => [
      'run',
      '--checkpoint',
      path.join(d, 'empty'),
      '--prompts',
      path.join(d, 'prompts.txt'),
      '--out',
      path.join(d, 'out'),
      '--backend',
      'cpu',
    ],
    status: 1,
    says: ['--checkpoint {dir}/empty: neither a checkpoint (no sampling.json) nor a run directory'],
  },
  {
    what: 'run --real missing',
    command: 'muse-eval',
    setup: files,
    argv: (d) => [
      'run',
      '--checkpoint',
      path.join(d, 'ckpt'),
      '--prompts',
      path.join(d, 'prompts.txt'),
      '--real',
      path.join(d, 'nope'),
      '--out',
      path.join(d, 'out'),
    ],
    status: 1,
    says: ['--real {dir}/nope: no such file or folder'],
  },
  {
    what: 'run --steps 0',
    command: 'muse-eval',
    setup: files,
    argv: (d) => [
      'run',
      '--checkpoint',
      path.join(d, 'ckpt'),
      '--prompts',
      path.join(d, 'prompts.txt'),
      '--steps',
      '0',
      '--out',
      path.join(d, 'out'),
    ],
    status: 2,
    says: ['--steps 0: expected an integer >= 1'],
  },

  // muse-sample: flags (exit 2) and the folders they name, before a model loads
  {
    what: '--checkpoint missing',
    command: 'muse-sample',
    setup: files,
    argv: (d) => ['--checkpoint', path.join(d, 'nope'), '--prompt', 'x', '--out', path.join(d, 'out')],
    status: 1,
    says: ['--checkpoint {dir}/nope: no such directory'],
  },
  {
    what: '--checkpoint a folder that is neither a checkpoint nor a run',
    command: 'muse-sample',
    setup: files,
    argv: (d) => sample(d),
    status: 1,
    says: [
      '--checkpoint {dir}/ckpt: neither a checkpoint (no sampling.json) nor a run directory (no checkpoints/ folder)',
    ],
  },
  {
    what: '--superres missing (named as --superres)',
    command: 'muse-sample',
    setup: files,
    argv: (d) => sample(d, '--superres', path.join(d, 'nope')),
    status: 1,
    says: ['--superres {dir}/nope: no such directory'],
  },
  {
    what: '--out an existing file',
    command: 'muse-sample',
    setup: files,
    argv: (d) => sample(d).map((x) => (x === path.join(d, 'out') ? path.join(d, 'file.txt') : x)),
    status: 2,
    says: ['--out {dir}/file.txt: {dir}/file.txt is a file; give a folder, or a grid .png path'],
  },
  {
    what: '--out given twice',
    command: 'muse-sample',
    setup: files,
    argv: (d) => sample(d, '--out', path.join(d, 'other')),
    status: 2,
    says: ['--out given 2 times ({dir}/out, {dir}/other): give it once'],
  },
  {
    what: '--steps 0',
    command: 'muse-sample',
    setup: files,
    argv: (d) => sample(d, '--steps', '0'),
    status: 2,
    says: ['--steps 0: expected an integer >= 1'],
  },
  {
    what: '--num 0',
    command: 'muse-sample',
    setup: files,
    argv: (d) => sample(d, '--num', '0'),
    status: 2,
    says: ['--num 0: expected an integer >= 1'],
  },
  {
    what: '--batch 0',
    command: 'muse-sample',
    setup: files,
    argv: (d) => sample(d, '--batch', '0'),
    status: 2,
    says: ['--batch 0: expected an integer >= 1'],
  },
  {
    what: '--seed -1',
    command: 'muse-sample',
    setup: files,
    argv: (d) => sample(d, '--seed', '-1'),
    status: 2,
    says: ['--seed -1: expected an integer >= 0'],
  },
  {
    what: '--temperature not a number',
    command: 'muse-sample',
    setup: files,
    argv: (d) => sample(d, '--temperature', 'abc'),
    status: 2,
    says: ["--temperature 'abc': expected a number >= 0 or two of them as start,end"],
  },
  {
    what: '--schedule unknown',
    command: 'muse-sample',
    setup: files,
    argv: (d) => sample(d, '--schedule', 'foo'),
    status: 2,
    says: ["--schedule: unknown mask schedule 'foo'", 'pow<k>'],
  },
  {
    what: '--guidance-schedule unknown',
    command: 'muse-sample',
    setup: files,
    argv: (d) => sample(d, '--guidance-schedule', 'foo'),
    status: 2,
    says: ['Given: "foo"', 'Choices: "constant", "linear", "cosine"'],
  },
  {
    what: '--mask without --init-image',
    command: 'muse-sample',
    setup: files,
    argv: (d) => sample(d, '--mask', path.join(d, 'file.txt')),
    status: 2,
    says: ['--init-image and --mask go together'],
  },
  {
    what: '--init-image with --superres',
    command: 'muse-sample',
    setup: files,
    argv: (d) =>
      sample(
        d,
        '--init-image',
        path.join(d, 'file.txt'),
        '--mask',
        path.join(d, 'file.txt'),
        '--superres',
        path.join(d, 'ckpt'),
      ),
    status: 2,
    says: ['--superres and --init-image do not go together'],
  },
  {
    what: '--init-image missing',
    command: 'muse-sample',
    setup: files,
    argv: (d) => sample(d, '--init-image', path.join(d, 'nope.png'), '--mask', path.join(d, 'file.txt')),
    status: 1,
    says: ['--init-image {dir}/nope.png: cannot read'],
  },
  {
    what: '--prompts missing',
    command: 'muse-sample',
    setup: files,
    argv: (d) => sample(d, '--prompts', path.join(d, 'nope.txt')),
    status: 1,
    says: ['--prompts {dir}/nope.txt: cannot read'],
  },
  {
    what: '--class with a text-conditioned checkpoint',
    command: 'muse-sample',
    setup: textCheckpoint,
    argv: (d) => sample(d, '--class', '3'),
    status: 1,
    says: ['--class needs a class-conditional checkpoint; this one is text-conditioned'],
  },
];

for (const row of ROWS) {
  test(`${row.command} ${row.what}: exit ${row.status}, names the input`, async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'muse-bad-input-'));
    await row.setup?.(dir);
    const r = await runInProcess(row.command, row.argv(dir));
    assert.equal(r.status, row.status, `exit code; stderr: ${r.stderr}`);
    for (const [stream, text, words] of [
      ['stderr', r.stderr, row.says],
      ['stdout', r.stdout, row.printed ?? []],
    ] as const) {
      for (const s of words) {
        if (typeof s === 'string')
          assert.ok(text.includes(s.replaceAll('{dir}', dir)), `${stream} says ${JSON.stringify(s)}; got: ${text}`);
        else assert.match(text, s, stream);
      }
    }
    assert.doesNotMatch(r.stderr, /^\s+at .*:\d+:\d+\)?$/m, 'no stack trace for bad input');
  });
}

test('tokenize --queue: a built-in VQGAN by name reaches the workers as the built-in, a folder as an absolute path', () => {
  for (const name of ['builtin', BUILTIN_VQ_ID]) assert.equal(jobModelSpecs(name, []).vq, 'builtin', name);
  assert.equal(jobModelSpecs(undefined, []).vq, undefined);
  assert.equal(jobModelSpecs('models/vq', []).vq, path.resolve('models/vq'));
  assert.deepEqual(jobModelSpecs(undefined, ['byt5-tiny', 't5:models/t5']).text, [
    'byt5-tiny',
    `t5:${path.resolve('models/t5')}`,
  ]);
});

test(
  '--backend auto says in one line which backend it chose, with no Dawn trace when there is no Vulkan loader',
  { skip: vulkanLoaderFound() && 'this machine has a Vulkan loader: Dawn probes it' },
  () => {
    const backend = path.resolve(import.meta.dirname, '../..', 'src', 'runtime', 'backend.ts');
    // Without a native TensorFlow build: where one exists, TensorFlow prints its own start-up notices (oneDNN) before
    // any log level can be set (docs/backends.md); this checks our probe, which must print nothing but its one line.
    const env = { ...process.env, MUSE_TENSORFLOW_BUILD: path.join(os.tmpdir(), 'muse-no-tensorflow-build') };
    const r = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        `const { initBackend } = await import(${JSON.stringify(backend)}); await initBackend('auto');`,
      ],
      { encoding: 'utf8', env },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /Vulkan: libvulkan|BackendVk\.cpp/);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /^tfjs backend: \S+.* via .*webgpu \(hardware adapter\): no Vulkan loader/);
  },
);

/** The web API's bad input: [method, url, content type, body] -> status and words of the JSON error. */
const HTTP_ROWS: Array<{
  what: string;
  method: 'GET' | 'POST';
  url: string;
  type?: string;
  body?: string | Buffer;
  status: number;
  says: RegExp;
}> = [
  {
    what: 'an unknown key in a JSON body',
    method: 'POST',
    url: '/api/optout/requests',
    type: 'application/json',
    body: '{"urls": ["http://a.example/x.jpg"], "admin": true}',
    status: 400,
    says: /body has an unknown key "admin"/,
  },
  {
    what: 'image bytes posted to a JSON route',
    method: 'POST',
    url: '/api/optout/requests',
    type: 'image/png',
    body: Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 0]),
    status: 400,
    says: /POST \/api\/optout\/requests takes a JSON body \(content type application\/json\), not "image\/png"/,
  },
  {
    what: 'an unknown query parameter',
    method: 'GET',
    url: '/api/optout/lookup?url=http%3A%2F%2Fa.example%2Fx.jpg&sort=new',
    status: 400,
    says: /unknown parameter "sort"/,
  },
  {
    what: 'a query parameter on a route that takes none',
    method: 'GET',
    url: '/api/datasets?sort=name',
    status: 400,
    says: /unknown parameter "sort" \(GET \/api\/datasets takes no query parameters\)/,
  },
  {
    what: 'a query parameter on a page that takes none',
    method: 'GET',
    url: '/optout?debug=1',
    status: 400,
    says: /unknown parameter "debug"/,
  },
];

test('serve: bad requests are answered 4xx with a message naming what is wrong', async () => {
  const app = await buildServer({ dataRoot: await mkdtemp(path.join(os.tmpdir(), 'muse-bad-http-')) });
  try {
    for (const row of HTTP_ROWS) {
      const r = await app.inject({
        method: row.method,
        url: row.url,
        payload: row.body,
        headers: row.type ? { 'content-type': row.type } : {},
      });
      assert.equal(r.statusCode >= 400 && r.statusCode < 500, true, `${row.what}: ${r.statusCode} ${r.body}`);
      if (row.status) assert.equal(r.statusCode, row.status, `${row.what}: ${r.body}`);
      assert.match(JSON.parse(r.body).error, row.says, row.what);
    }
  } finally {
    await app.close();
  }
});
