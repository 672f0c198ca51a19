/**
 * `npm run bench -- train`: the real training loop (MuseRunner + runTrainingLoop, log.jsonl as the source of
 * the numbers) on synthetic token caches, for the `tiny` config, the models benchmark's transformer
 * (hidden 256, 4 layers, 256 image tokens, batch 8), a small U-ViT (architecture uvit) and the superres512
 * stage at 4,096 high-res tokens with full and with multi-axis self-attention (same small model, same run:
 * their ratio is the multi-axis speed-up). Steps/s, tokens/s and the split of a step into data,
 * forward + backward and optimizer (+ EMA). Target: data time < 2% of step time.
 * With no --backend, every backend side by side, each in its own process (benchTrainSideBySide): wasm on one
 * thread, wasm on all threads (target: tiny step <= 0.6x the one-thread time) and webgpu on the
 * adapter found (named; a software adapter runs `tiny` only, it is a CPU rasteriser), the native tensorflow build
 * (target: the transformer step <= 0.8x PyTorch CPU's) and PyTorch CPU on the transformer (bench/torch-transformer.py,
 * where torch is installed; MUSE_BENCH_PYTHON names the Python).
 */
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fork, spawnSync } from 'node:child_process';
import { initBackend, type BackendName } from '../src/runtime/backend.ts';
import type { FromModelsChild, ToModelsChild } from './models-child.ts';
import { loadTrainConfig } from '../src/train/config/load.ts';
import { MuseRunner } from '../src/train/muse/runner.ts';
import { runTrainingLoop } from '../src/train/run/loop.ts';
import { readJsonl } from '../src/train/core/index.ts';
import { runPaths } from '../src/run-folder/index.ts';
import { writeSyntheticCaches } from '../test/helpers/synthetic-cache.ts';
import { markdownTable, median, round, writeBenchVq } from './lib.ts';

const CONFIGS_DIR = path.resolve(import.meta.dirname, '../configs');

interface Variant {
  name: string;
  grid: number;
  codebook: number;
  textDim: number;
  textTokens: number;
  sets: string[];
  steps: number;
  stage?: string;
  pooledDim?: number;
  /** superres512: the low-res (base) cache written beside the high-res one. */
  lowres?: { grid: number; codebook: number };
}

const superres = (attention: string): Variant => ({
  name: `superres512 ${attention}`,
  stage: 'superres512',
  grid: 64,
  codebook: 256,
  textDim: 64,
  textTokens: 16,
  steps: 3,
  lowres: { grid: 16, codebook: 256 },
  sets: [
    'model.architecture=superres',
    'model.vq=builtin',
    'model.lowres_vq=builtin',
    'data.lowres_vq_id=vq-low',
    'model.text_encoder=byt5-tiny',
    'training.batch_size=1',
    'training.gradient_accumulation_steps=1',
    'ema.enabled=false',
    'model.transformer={codebook_size: 256, num_vq_tokens: 4096, lowres_codebook_size: 256, num_lowres_tokens: 256, hidden_size: 64, ' +
      `num_hidden_layers: 2, num_lowres_layers: 1, num_attention_heads: 2, intermediate_size: 128, encoder_hidden_size: 64, attention: ${attention}, block_size: 8, grid_size: 8}`,
  ],
});

const VARIANTS: Variant[] = [
  { name: 'tiny', grid: 8, codebook: 256, textDim: 256, textTokens: 16, sets: [], steps: 40 },
  {
    name: 'models-bench transformer',
    grid: 16,
    codebook: 1024,
    textDim: 256,
    textTokens: 16,
    steps: 8,
    sets: [
      'model.transformer={codebook_size: 1024, num_vq_tokens: 256, max_position_embeddings: 256, hidden_size: 256, num_hidden_layers: 4, ' +
        'num_attention_heads: 8, intermediate_size: 1024, add_cross_attention: true, encoder_hidden_size: 256, norm_type: rmsnorm, ' +
        'layer_norm_eps: 1e-6, use_normformer: false, use_bias: false, hidden_dropout: 0, attention_dropout: 0, ffn_type: vanilla}',
      'training.batch_size=8',
    ],
  },
  {
    name: 'uvit (aMUSEd layout, small)',
    grid: 16,
    codebook: 1024,
    textDim: 64,
    textTokens: 16,
    pooledDim: 32,
    steps: 8,
    sets: [
      'model.architecture=uvit',
      'model.transformer={codebook_size: 1024, vocab_size: 1032, num_vq_tokens: 256, hidden_size: 256, ' +
        'in_channels: 128, block_out_channels: [128], num_res_blocks: 1, block_num_heads: 4, num_hidden_layers: 4, num_attention_heads: 8, ' +
        'intermediate_size: 1024, encoder_hidden_size: 64, cond_embed_dim: 32, micro_cond_encode_dim: 16, micro_cond_embed_dim: 80, ' +
        'default_micro_conds: [256, 256, 0, 0, 6]}',
      'training.batch_size=8',
    ],
  },
  superres('full'),
  superres('multi_axis'),
];

const WARMUP = 3;

export interface TrainBenchOptions {
  quick?: boolean;
  log?: (m: string) => void;
  backend?: string;
  /** wasm thread pool size (1: the single-thread build). */
  threads?: number;
  /** Only these variants (by name). */
  variants?: string[];
  /** Timed steps instead of each variant's default. */
  steps?: number;
}

export async function benchTrain(opts: TrainBenchOptions = {}) {
  const log = opts.log ?? ((m: string) => process.stderr.write(m + '\n'));
  const backend = await initBackend((opts.backend ?? 'wasm') as BackendName, {
    quiet: true,
    wasmThreads: opts.threads ?? 1,
  });
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'muse-bench-train-'));
  const rows: Array<Array<string | number>> = [];
  const results: Record<string, Record<string, number>> = {};
  try {
    for (const v of VARIANTS.filter((x) => !opts.variants || opts.variants.includes(x.name))) {
      const timed = opts.steps ?? v.steps;
      const steps = opts.quick ? Math.max(WARMUP + 2, Math.ceil(timed / 4)) : timed + WARMUP;
      const dir = path.join(tmp, v.name.replace(/\W+/g, '-'));
      await mkdir(path.join(dir, 'shards'), { recursive: true });
      const shards = v.lowres ? { 0: 50, 1: 50 } : { 0: 500, 1: 500 };
      await writeSyntheticCaches(dir, {
        shards,
        gridH: v.grid,
        gridW: v.grid,
        codebookSize: v.codebook,
        dim: v.textDim,
        pooledDim: v.pooledDim,
        textLength: () => v.textTokens,
        noText: !!v.lowres,
      });
      if (v.lowres) {
        await writeSyntheticCaches(dir, {
          shards,
          vqId: 'vq-low',
          gridH: v.lowres.grid,
          gridW: v.lowres.grid,
          codebookSize: v.lowres.codebook,
          dim: v.textDim,
          textLength: () => v.textTokens,
        });
      }
      // The built-in VQGAN has 256 codes; a transformer predicting more needs a VQGAN that decodes them.
      const vqSet =
        v.codebook > 256 && !v.lowres ? [`model.vq=${await writeBenchVq(path.join(dir, 'vq'), v.codebook)}`] : [];
      const cfg = loadTrainConfig({
        stage: v.stage ?? 'tiny',
        configsDir: CONFIGS_DIR,
        sets: [
          ...vqSet,
          `data.path=${dir}`,
          'data.vq_id=vq-test',
          'data.text_id=text-test',
          'data.validation_shards=[]',
          `training.max_steps=${steps}`,
          `training.save_every=${steps}`,
          'training.validate_every=0',
          ...v.sets,
        ],
      });
      const runDir = path.join(dir, 'run');
      const runner = await MuseRunner.create({ config: cfg, datasetDirs: [dir], runDir });
      const params = runner.model.parameterCount();
      log(`${v.name}: ${params} parameters, ${steps} steps on ${backend.name}`);
      try {
        await runTrainingLoop({
          config: cfg,
          runDir,
          runner,
          out: { write: () => true } as unknown as NodeJS.WriteStream,
        });
      } finally {
        runner.dispose();
      }
      const recs = (await readJsonl(runPaths(runDir).log)).filter((r) => typeof r.loss === 'number').slice(WARMUP);
      const m = (k: string) => median(recs.map((r) => r[k] as number));
      const stepMs = m('step_ms');
      const r = {
        step_ms: round(stepMs, 1),
        steps_per_s: round(1000 / stepMs, 2),
        samples_per_s: round((cfg.training.batch_size * 1000) / stepMs, 1),
        tokens_per_s: Math.round((cfg.training.batch_size * v.grid * v.grid * 1000) / stepMs),
        data_ms: round(m('data_ms'), 2),
        forward_backward_ms: round(m('compute_ms'), 1),
        optimizer_ms: round(m('optimizer_ms'), 1),
        data_share_pct: round((100 * m('data_ms')) / stepMs, 2),
        params,
      };
      results[v.name] = r;
      rows.push([
        v.name,
        r.params,
        cfg.training.batch_size,
        v.grid * v.grid,
        r.step_ms,
        r.steps_per_s,
        r.tokens_per_s,
        r.data_ms,
        r.forward_backward_ms,
        r.optimizer_ms,
        `${r.data_share_pct}%`,
      ]);
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  const worst = Math.max(...Object.values(results).map((r) => r.data_share_pct));
  const full = results['superres512 full'];
  const axis = results['superres512 multi_axis'];
  return {
    config: {
      backend: backend.name,
      threads: backend.threads,
      adapter: backend.adapter,
      warmup_steps: WARMUP,
      quick: !!opts.quick,
    },
    ...results,
    superres_multi_axis_speedup: full && axis ? round(full.step_ms / axis.step_ms, 2) : null,
    targets: { data_share_below_2pct: { target: '< 2% of step time', measured: `${worst}%`, met: worst < 2 } },
    table: markdownTable(
      [
        'config',
        'params',
        'batch',
        'tokens/img',
        'step ms',
        'steps/s',
        'tokens/s',
        'data ms',
        'fwd+bwd ms',
        'optimizer ms',
        'data share',
      ],
      rows,
    ),
  };
}

function inChild(opts: TrainBenchOptions): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = fork(path.join(import.meta.dirname, 'models-child.ts'), [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let reply: FromModelsChild | undefined;
    child.once('message', (m: FromModelsChild) => (reply = m));
    child.once('exit', (code) => {
      if (reply?.ok) resolve(reply.result);
      else reject(new Error(reply ? reply.error.split('\n')[0] : `process exited with code ${code}`));
    });
    const { log: _log, ...rest } = opts;
    child.send({
      file: path.join(import.meta.dirname, 'train.ts'),
      fn: 'benchTrain',
      args: [rest],
    } satisfies ToModelsChild);
  });
}

/** Step time per backend in one run, each backend in a fresh process (the wasm build is chosen per process). */
export async function benchTrainSideBySide(
  opts: { quick?: boolean; log?: (m: string) => void; variants?: string[] } = {},
) {
  const log = opts.log ?? ((m: string) => process.stderr.write(m + '\n'));
  const cores = Math.max(2, os.availableParallelism());
  const lanes: Array<{ label: string; opts: TrainBenchOptions }> = [
    { label: 'wasm, 1 thread', opts: { backend: 'wasm', threads: 1 } },
    { label: `wasm, ${cores} threads`, opts: { backend: 'wasm', threads: cores } },
    // lavapipe needs ~1.5 s per tiny step at batch 16: tiny only, fewer steps
    { label: 'webgpu', opts: { backend: 'webgpu', variants: ['tiny'], steps: 8 } },
    // the native build (npm run build:tensorflow), its intra-op pool on every core
    { label: 'tensorflow', opts: { backend: 'tensorflow' } },
  ];
  const out: Record<string, unknown> = {};
  const rows: Array<Array<string | number>> = [];
  const notes: string[] = [];
  const stepMs: Record<string, Record<string, number>> = {};
  for (const lane of lanes) {
    log(`train bench: ${lane.label}`);
    let r: Record<string, unknown>;
    try {
      const variants =
        opts.variants &&
        (lane.opts.variants ? lane.opts.variants.filter((v) => opts.variants!.includes(v)) : opts.variants);
      if (variants?.length === 0) continue;
      r = await inChild({ ...lane.opts, quick: opts.quick, ...(variants ? { variants } : {}) });
    } catch (err) {
      notes.push(`${lane.label}: not measured (${(err as Error).message.slice(0, 300)})`);
      continue;
    }
    const cfg = r.config as { backend: string; threads?: number; adapter?: { description: string; software: boolean } };
    const name = cfg.adapter
      ? `webgpu on ${cfg.adapter.description}${cfg.adapter.software ? ' (software)' : ''}`
      : `${cfg.backend}${cfg.threads ? `, ${cfg.threads} thread${cfg.threads > 1 ? 's' : ''}` : ''}`;
    out[lane.label] = r;
    for (const v of VARIANTS) {
      const m = r[v.name] as Record<string, number> | undefined;
      if (!m) continue;
      (stepMs[v.name] ??= {})[lane.label] = m.step_ms;
      rows.push([v.name, name, m.step_ms, m.tokens_per_s, m.forward_backward_ms, m.optimizer_ms]);
    }
  }
  // PyTorch CPU on the same transformer shape, batch and threads (bench/torch-transformer.py), where torch is installed.
  const torch =
    !opts.variants || opts.variants.includes('models-bench transformer')
      ? pytorchStep(cores, !!opts.quick)
      : { error: 'the transformer is not among --variants' };
  if ('error' in torch) notes.push(`PyTorch CPU: not measured (${torch.error})`);
  else {
    out.pytorch = torch;
    (stepMs['models-bench transformer'] ??= {}).pytorch = torch.step_ms;
    rows.push([
      'models-bench transformer',
      `PyTorch ${torch.torch} CPU, ${torch.threads} threads`,
      torch.step_ms,
      Math.round((8 * 256 * 1000) / torch.step_ms),
      '',
      '',
    ]);
  }
  const tfStep = stepMs['models-bench transformer']?.tensorflow;
  const vsTorch = tfStep && !('error' in torch) ? round(tfStep / torch.step_ms, 3) : undefined;
  const base = stepMs.tiny?.['wasm, 1 thread'];
  const threaded = stepMs.tiny?.[`wasm, ${cores} threads`];
  const ratio = base && threaded ? round(threaded / base, 3) : undefined;
  const ratios: Record<string, number> = {};
  for (const [variant, lanesMs] of Object.entries(stepMs)) {
    const b = lanesMs['wasm, 1 thread'];
    if (b)
      for (const [lane, ms] of Object.entries(lanesMs))
        ratios[`${variant}: ${lane} / wasm 1 thread`] = round(ms / b, 3);
  }
  return {
    config: { lanes: lanes.map((l) => l.label), cores, warmup_steps: WARMUP, quick: !!opts.quick },
    ...out,
    ratios,
    targets: {
      tiny_all_threads_vs_one: {
        target: '<= 0.6x the one-thread step time',
        measured: ratio ?? 'not measured',
        met: ratio !== undefined && ratio <= 0.6,
      },
      transformer_tensorflow_vs_pytorch: {
        target: '<= 0.8x the PyTorch CPU step time',
        measured: vsTorch ?? 'not measured',
        met: vsTorch !== undefined && vsTorch <= 0.8,
      },
    },
    notes,
    table:
      markdownTable(['config', 'backend', 'step ms', 'tokens/s', 'fwd+bwd ms', 'optimizer ms'], rows) +
      `\n\nstep time relative to wasm on 1 thread: ${
        Object.entries(ratios)
          .map(([k, v]) => `${k} = ${v}`)
          .join('; ') || 'n/a'
      }` +
      (notes.length ? `\n\n${notes.join('\n')}` : ''),
  };
}

/** One PyTorch CPU step of the models-bench transformer (hidden 256, 4 layers, batch 8, 256 tokens), or why not. */
function pytorchStep(
  threads: number,
  quick: boolean,
): { torch: string; threads: number; step_ms: number; best_ms: number; params: number } | { error: string } {
  const python = process.env.MUSE_BENCH_PYTHON || 'python3';
  const script = path.join(import.meta.dirname, 'torch-transformer.py');
  const r = spawnSync(
    python,
    [
      script,
      '--hidden',
      '256',
      '--layers',
      '4',
      '--heads',
      '8',
      '--batch',
      '8',
      '--tokens',
      '256',
      '--threads',
      String(threads),
      '--steps',
      quick ? '2' : '8',
    ],
    { encoding: 'utf8' },
  );
  if (r.error) return { error: `${python}: ${r.error.message}` };
  if (r.status !== 0) return { error: (r.stderr || `exit ${r.status}`).trim().split('\n').pop()!.slice(0, 300) };
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}
