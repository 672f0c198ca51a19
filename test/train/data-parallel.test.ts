// Data-parallel muse-train under `mpirun -np 2` on loopback: equal to one process at the same global batch (losses
// and final weights within 1e-5 relative), with gradient accumulation on the ranks too; only rank 0 writes the run folder; ranks with different configs
// are refused before the first step; a rank killed with kill -9 stops the job with an error, and the run resumes
// (on another number of ranks) as if uninterrupted.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadSafetensors } from '../../src/models/safetensors.ts';
import { readJsonl } from '../../src/train/core/index.ts';
import { writeSyntheticCaches } from '../helpers/synthetic-cache.ts';
import { mpiSkip, mpirun, mpirunEach, rankPid, type MpiRun } from '../helpers/mpi.ts';
import { loadTrainConfig } from '../../src/train/config/load.ts';
import { assertBatchSplits } from '../../src/train/core/data-parallel.ts';

const skip = mpiSkip();
const root = path.resolve(import.meta.dirname, '../..');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'muse-data-parallel-'));
const dataset = path.join(tmp, 'data');
after(() => rmSync(tmp, { recursive: true, force: true }));

// A 1-layer transformer on 4x4 tokens (the tiny stage, smaller), no dropout: its masks would differ per row split.
const SETS = [
  'model.transformer={codebook_size: 64, num_vq_tokens: 16, max_position_embeddings: 16, hidden_size: 32, num_hidden_layers: 1, ' +
    'num_attention_heads: 2, intermediate_size: 64, add_cross_attention: true, encoder_hidden_size: 8, norm_type: rmsnorm, ' +
    'use_normformer: false, use_codebook_size_for_output: true, hidden_dropout: 0.0, attention_dropout: 0.0}',
  'data.vq_id=vq-test',
  'data.text_id=text-test',
  `data.path=${dataset}`,
  'data.shuffle_buffer=5',
  'sampling.prompts=[]',
  'training.batch_size=8',
  'training.max_steps=20',
  'training.save_every=10',
  'lr_scheduler.warmup_steps=5',
  'ema.update_after_step=2',
];

const args = (runDir: string, sets: string[] = [], extra: string[] = [], base = SETS, stage = 'tiny') => [
  path.join(root, 'bin', 'muse-train.js'),
  '--stage',
  stage,
  '--backend',
  'wasm',
  '--out',
  runDir,
  ...[...base, ...sets].flatMap((s) => ['--set', s]),
  ...extra,
];

/** muse-train as one plain process (no launcher): the reference. */
function single(
  runDir: string,
  sets: string[] = [],
  extra: string[] = [],
  base = SETS,
  stage = 'tiny',
): Promise<MpiRun> {
  return plain(args(runDir, sets, extra, base, stage));
}

/** `node --import tsx ARGV` as one plain process. */
function plain(argv: string[]): Promise<MpiRun> {
  const t0 = performance.now();
  const child = spawn(process.execPath, ['--import', 'tsx', ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, ms: performance.now() - t0 })),
  );
}

async function ensureDataset(): Promise<void> {
  if (existsSync(path.join(dataset, 'tokens'))) return;
  mkdirSync(path.join(dataset, 'shards'), { recursive: true });
  await writeSyntheticCaches(dataset, { shards: { 0: 20, 1: 19 }, gridH: 4, gridW: 4, codebookSize: 64, dim: 8 });
}

const losses = async (runDir: string) =>
  (await readJsonl(path.join(runDir, 'log.jsonl')))
    .filter((r) => 'loss' in r)
    .map((r) => [r.step as number, r.loss as number]);

function assertClose(actual: number, expected: number, what: string, rel = 1e-5): void {
  const tol = rel * Math.max(Math.abs(expected), 1e-3);
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: ${actual} vs ${expected} (tolerance ${tol})`);
}

/**
 * Losses step by step and every weight of the last checkpoint (default: transformer and EMA) within 1e-5 relative:
 * each weight's difference relative to its tensor's largest magnitude ('max'), or each tensor's difference as
 * ||a - b|| / ||a|| ('l2': for runs whose float32 summation orders differ and Adam amplifies that in a few weights).
 */
async function assertSameRun(
  a: string,
  b: string,
  step: number,
  parts = ['transformer/model.safetensors', 'ema/model.safetensors'],
  relative: 'max' | 'l2' = 'max',
): Promise<void> {
  const la = await losses(a);
  const lb = await losses(b);
  assert.deepEqual(
    lb.map((x) => x[0]),
    la.map((x) => x[0]),
  );
  la.forEach(([s, loss], i) => assertClose(lb[i][1], loss, `loss at step ${s}`));
  const ck = `checkpoints/step-${String(step).padStart(8, '0')}`;
  for (const part of parts) {
    const wa = await loadSafetensors(path.join(a, ck, part));
    const wb = await loadSafetensors(path.join(b, ck, part));
    assert.deepEqual(Object.keys(wb).sort(), Object.keys(wa).sort());
    for (const [name, t] of Object.entries(wa)) {
      const u = wb[name].data;
      let worst = 0;
      if (relative === 'l2') {
        let d2 = 0;
        let n2 = 0;
        for (let i = 0; i < t.data.length; i++) {
          d2 += (u[i] - t.data[i]) ** 2;
          n2 += t.data[i] ** 2;
        }
        worst = Math.sqrt(d2 / Math.max(n2, 1e-12));
      } else {
        // relative to the tensor's largest magnitude: a weight near 0 is compared at the tensor's scale
        const scale = Math.max(...Array.from(t.data, Math.abs), 1e-3);
        for (let i = 0; i < t.data.length; i++) worst = Math.max(worst, Math.abs(u[i] - t.data[i]) / scale);
      }
      assert.ok(worst <= 1e-5, `${part} ${name}: relative difference (${relative}) ${worst}`);
    }
  }
}

/** Every file under a folder, relative, sorted. */
const tree = (dir: string) => (readdirSync(dir, { recursive: true }) as string[]).sort();

test(
  '2 ranks train as 1 rank: 20 steps at global batch 8, losses and final weights within 1e-5; only rank 0 writes',
  { skip },
  async () => {
    await ensureDataset();
    const one = path.join(tmp, 'one');
    const two = path.join(tmp, 'two');
    const [r1, r2] = [await single(one), await mpirun(2, args(two))];
    assert.equal(r1.code, 0, r1.stderr);
    assert.equal(r2.code, 0, r2.stderr);
    await assertSameRun(one, two, 20);
    // Rank 0 alone writes: the same files as one process (one TensorBoard event file, no second log), each step logged once.
    assert.deepEqual(
      tree(two).filter((f) => !f.startsWith('tensorboard/')),
      tree(one).filter((f) => !f.startsWith('tensorboard/')),
    );
    assert.equal(readdirSync(path.join(two, 'tensorboard')).length, 1);
    assert.deepEqual(
      (await losses(two)).map((x) => x[0]),
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    const log = await readJsonl(path.join(two, 'log.jsonl'));
    assert.ok(
      log.filter((r) => 'loss' in r).every((r) => typeof r.allreduce_ms === 'number'),
      'each step reports its all-reduce time',
    );
    assert.match(r2.stderr, /rank 0 of 2/);
    assert.doesNotMatch(r2.stderr, /rank 1 of 2/, 'rank 1 prints nothing');
  },
);

test(
  'gradient accumulation composes: 2 ranks x 2 accumulation steps at global batch 8 = 1 rank x global batch 8',
  { skip },
  async () => {
    await ensureDataset();
    const steps = ['training.max_steps=10', 'training.save_every=10'];
    const one = path.join(tmp, 'accum-one');
    const two = path.join(tmp, 'accum-two');
    const [r1, r2] = [
      await single(one, steps),
      await mpirun(2, args(two, [...steps, 'training.gradient_accumulation_steps=2'])),
    ];
    assert.equal(r1.code, 0, r1.stderr);
    assert.equal(r2.code, 0, r2.stderr);
    await assertSameRun(one, two, 10);
  },
);

test('U-ViT (pooled text vectors split with the rows): 2 ranks train as 1', { skip }, async () => {
  const dir = path.join(tmp, 'uvit-data');
  mkdirSync(path.join(dir, 'shards'), { recursive: true });
  await writeSyntheticCaches(dir, {
    shards: { 0: 12, 1: 12 },
    gridH: 4,
    gridW: 4,
    codebookSize: 64,
    dim: 64,
    pooledDim: 32,
  });
  const base = [
    'model.architecture=uvit',
    `data.path=${dir}`,
    'data.vq_id=vq-test',
    'data.text_id=text-test',
    'sampling.prompts=[]',
    'model.transformer={codebook_size: 64, vocab_size: 72, num_vq_tokens: 16, hidden_size: 32, in_channels: 16, block_out_channels: [16], ' +
      'num_res_blocks: 1, block_num_heads: 2, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 64, encoder_hidden_size: 64, ' +
      'cond_embed_dim: 32, micro_cond_encode_dim: 4, micro_cond_embed_dim: 20, default_micro_conds: [64, 64, 0, 0, 6], hidden_dropout: 0.0, attention_dropout: 0.0}',
    'training.batch_size=4',
    'training.max_steps=6',
    'training.save_every=6',
    'data.shuffle_buffer=3',
    'lr_scheduler.warmup_steps=5',
  ];
  const one = path.join(tmp, 'uvit-one');
  const two = path.join(tmp, 'uvit-two');
  const [r1, r2] = [await single(one, [], [], base), await mpirun(2, args(two, [], [], base))];
  assert.equal(r1.code, 0, r1.stderr);
  assert.equal(r2.code, 0, r2.stderr);
  await assertSameRun(one, two, 6);
});

test('the super-res stage (low-res tokens split with the rows): 2 ranks train as 1', { skip }, async () => {
  const dir = path.join(tmp, 'superres-data');
  mkdirSync(path.join(dir, 'shards'), { recursive: true });
  await writeSyntheticCaches(dir, {
    shards: { 0: 12, 1: 12 },
    vqId: 'vq-low',
    gridH: 4,
    gridW: 4,
    codebookSize: 16,
    dim: 8,
  });
  await writeSyntheticCaches(dir, {
    shards: { 0: 12, 1: 12 },
    vqId: 'vq-high',
    gridH: 8,
    gridW: 8,
    codebookSize: 32,
    noText: true,
  });
  const base = [
    'model.architecture=superres',
    'model.vq=builtin',
    'model.lowres_vq=builtin',
    'model.text_encoder=byt5-tiny',
    `data.path=${dir}`,
    'data.vq_id=vq-high',
    'data.lowres_vq_id=vq-low',
    'data.text_id=text-test',
    'sampling.prompts=[]',
    'model.transformer={codebook_size: 32, num_vq_tokens: 64, lowres_codebook_size: 16, num_lowres_tokens: 16, hidden_size: 32, ' +
      'num_hidden_layers: 1, num_lowres_layers: 1, num_attention_heads: 4, intermediate_size: 64, encoder_hidden_size: 8, ' +
      'attention: multi_axis, block_size: 4, grid_size: 2, hidden_dropout: 0.0, attention_dropout: 0.0}',
    'training.batch_size=4',
    'training.gradient_accumulation_steps=1',
    'training.max_steps=2',
    'training.save_every=2',
    'data.shuffle_buffer=3',
    'lr_scheduler.warmup_steps=0', // a super-res step takes seconds on wasm
  ];
  const one = path.join(tmp, 'superres-one');
  const two = path.join(tmp, 'superres-two');
  const [r1, r2] = [
    await single(one, [], [], base, 'superres512'),
    await mpirun(2, args(two, [], [], base, 'superres512')),
  ];
  assert.equal(r1.code, 0, r1.stderr);
  assert.equal(r2.code, 0, r2.stderr);
  await assertSameRun(one, two, 2);
});

test(
  'the VQGAN stage on 2 ranks: as 1 rank on tiny-vqgan (k-means++ codebook, dead-code restarts); with the GAN on, as 1 rank x 2 accumulation steps',
  { skip },
  async () => {
    const dataRoot = path.join(tmp, 'vq-root');
    const fetched = spawnSync(
      process.execPath,
      [path.join(root, 'bin', 'muse-data.js'), 'fetch', 'sample', '--data-root', dataRoot],
      { encoding: 'utf8' },
    );
    assert.equal(fetched.status, 0, fetched.stderr);
    // 16 px crops of 8 images, 2 autoencoder steps, then the k-means++ codebook and restarts of codes unused for 2 steps.
    const base = [
      `data.path=${path.join(dataRoot, 'sample')}`,
      'training.batch_size=8',
      'training.max_steps=6',
      'training.save_every=6',
      'vqgan_training.autoencoder_warmup_steps=2',
      'vqgan_training.restart_dead_codes.after_steps=2',
      'vqgan_training.recon_every=6',
      'lr_scheduler.decay_steps=4',
    ];
    const vq = (runDir: string, sets: string[]) => [
      path.join(root, 'bin', 'muse-train.js'),
      '--config',
      path.join(root, 'configs', 'tiny-vqgan.yaml'),
      '--backend',
      'wasm',
      '--out',
      runDir,
      ...[...base, ...sets].flatMap((s) => ['--set', s]),
    ];
    const parts = ['vqgan/model.safetensors'];
    // Plain (no GAN): every loss term is a mean over equal micro-batches, so 2 ranks compute the update of 1 rank up to
    // float32 summation order (one pass over 8 images against two over 4); Adam (beta2 0.9) turns that into differences
    // of up to 2e-5 of a tensor's largest weight in a few weights after 6 steps, 3e-7 of the tensor's norm: compared by norm.
    const one = path.join(tmp, 'vq-one');
    const two = path.join(tmp, 'vq-two');
    const [r1, r2] = [await plain(vq(one, [])), await mpirun(2, vq(two, []))];
    assert.equal(r1.code, 0, r1.stderr);
    assert.equal(r2.code, 0, r2.stderr);
    await assertSameRun(one, two, 6, parts, 'l2');
    assert.deepEqual(
      tree(two).filter((f) => !f.startsWith('tensorboard/')),
      tree(one).filter((f) => !f.startsWith('tensorboard/')),
    );
    const restarted = (await readJsonl(path.join(two, 'log.jsonl'))).reduce(
      (n, r) => n + (Number(r.dead_codes_restarted) || 0),
      0,
    );
    assert.ok(restarted > 0, "dead codes were restarted (from every rank's micro-batches)");
    // GAN from step 3: the adaptive weight is per micro-batch (taming's rule), so 2 ranks equal 1 rank x 2 accumulation
    // steps (the same micro-batches: weights compared one by one).
    const gan = [
      'vqgan_training.discriminator.enabled=true',
      'vqgan_training.discriminator.start_step=3',
      'vqgan_training.discriminator.ndf=8',
      'vqgan_training.discriminator.n_layers=1',
    ];
    const ganOne = path.join(tmp, 'vq-gan-one');
    const ganTwo = path.join(tmp, 'vq-gan-two');
    const [g1, g2] = [
      await plain(vq(ganOne, [...gan, 'training.gradient_accumulation_steps=2'])),
      await mpirun(2, vq(ganTwo, gan)),
    ];
    assert.equal(g1.code, 0, g1.stderr);
    assert.equal(g2.code, 0, g2.stderr);
    await assertSameRun(ganOne, ganTwo, 6, [...parts, 'discriminator.safetensors']);
    const dLoss = (await readJsonl(path.join(ganTwo, 'log.jsonl'))).filter((r) => typeof r.d_loss === 'number');
    assert.equal(dLoss.length, 3, 'the discriminator trained at steps 4 to 6');
  },
);

test('ranks given different configs are refused before the first step', { skip }, async () => {
  await ensureDataset();
  const runDir = path.join(tmp, 'mismatch');
  const r = await mpirunEach([args(runDir), args(runDir, ['optimizer.lr=0.002'])]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /disagree on the resolved config/);
  assert.equal(
    existsSync(path.join(runDir, 'checkpoints')) &&
      readdirSync(path.join(runDir, 'checkpoints')).some((f) => f.startsWith('step-')),
    false,
  );
  assert.equal((await losses(runDir).catch(() => [])).length, 0, 'no step was taken');
});

test('a global batch that does not split into ranks x accumulation steps: a clear error naming the numbers', () => {
  const cfg = (b: number, accum = 3) =>
    loadTrainConfig({
      stage: 'tiny',
      configsDir: path.join(root, 'configs'),
      sets: [`training.batch_size=${b}`, `training.gradient_accumulation_steps=${accum}`],
    });
  assert.throws(
    () => assertBatchSplits(cfg(21), 2),
    /training\.batch_size 21 \(the global batch of one optimizer update\) does not divide by 2 ranks x 3 accumulation steps = 6/,
  );
  assertBatchSplits(cfg(24), 2);
  assertBatchSplits(cfg(21), 1);
  // One process: the config itself is refused when the accumulation steps do not divide the batch.
  assert.throws(
    () => cfg(8),
    /training\.batch_size.*8 \(the samples of one optimizer update\) does not divide by training\.gradient_accumulation_steps 3/,
  );
});

test(
  'kill -9 of rank 1 mid-run: the job stops with an error within 60 s; --resume latest (on 1 rank) equals the uninterrupted run',
  { skip },
  async (t) => {
    await ensureDataset();
    const sets = ['training.max_steps=100'];
    const whole = path.join(tmp, 'whole');
    const killed = path.join(tmp, 'killed');
    const ref = await single(whole, sets);
    assert.equal(ref.code, 0, ref.stderr);
    let mpirunPid = 0;
    let killedAt = 0;
    const poll = setInterval(() => {
      if (killedAt || !existsSync(path.join(killed, 'checkpoints', 'step-00000010'))) return;
      const pid = rankPid(mpirunPid, 1);
      if (!pid) return;
      process.kill(pid, 'SIGKILL');
      killedAt = performance.now();
    }, 20);
    const r = await mpirun(2, args(killed, sets), { onStart: (pid) => (mpirunPid = pid) }).finally(() =>
      clearInterval(poll),
    );
    assert.ok(killedAt, `rank 1 was never killed (exit ${r.code}): ${r.stderr}`);
    const stoppedAfter = performance.now() - killedAt;
    assert.notEqual(r.code, 0);
    assert.ok(stoppedAfter < 60_000, `the job took ${Math.round(stoppedAfter)} ms to stop`);
    t.diagnostic(`mpirun exited ${r.code} ${Math.round(stoppedAfter)} ms after the kill`);
    assert.match(r.stderr, /rank 1 .*(killed|signal 9)/i);
    const reached = (await losses(killed)).at(-1)![0];
    assert.ok(reached >= 10 && reached < 100, `stopped at step ${reached}`);
    const resumed = await single(killed, sets, ['--resume', 'latest']);
    assert.equal(resumed.code, 0, resumed.stderr);
    await assertSameRun(whole, killed, 100);
  },
);
