/**
 * The tests every MUSE variant passes (test/helpers/muse-variants.ts), one table: a run stopped and resumed logs
 * the same losses and ends with the same weights as an uninterrupted one (with dropout, EMA where on, gradient
 * accumulation, shuffling), and the loss falls when overfitting one small batch. A new variant gets a row; what
 * only one variant has (its checkpoint layout, sampling it) is tested in its own file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { onBackend, tensorflowSkip } from '../helpers/backend.ts';
import { readEvents } from '../helpers/tfevents.ts';
import { losses, mean, trainMuse } from '../helpers/muse-training.ts';
import { COMBINED, SUPERRES, TRANSFORMER, UVIT, type MuseVariant } from '../helpers/muse-variants.ts';
import { MaskGiTUViT } from '../../src/models/uvit/index.ts';

interface Row {
  variant: MuseVariant;
  /** Backends the resume test runs on (tensorflow: skipped where there is no native build). */
  backends: Array<'wasm' | 'tensorflow'>;
  resume: { steps: number; saveEvery: number; stopAfter: number; sets?: string[]; parts: string[] };
  /** Checks on the uninterrupted run `a` and the resumed run `b` after `steps`. */
  afterResume?: (a: string, b: string, checkpoint: (run: string) => string) => Promise<void>;
  /** initialNearLn: the first losses are within this of ln(codebook) (all tokens masked are guessed uniformly). */
  overfit: { steps: number; sets?: string[]; initialNearLn?: number; lossPlot?: boolean };
}

const NO_DROPOUT = ['model.transformer.hidden_dropout=0', 'model.transformer.attention_dropout=0'];

const ROWS: Row[] = [
  {
    variant: TRANSFORMER,
    backends: ['wasm', 'tensorflow'],
    resume: { steps: 12, saveEvery: 4, stopAfter: 5, parts: ['transformer', 'ema'] },
    afterResume: async (a, b) => {
      // TensorBoard: one event file per invocation; read in order with TensorBoard's purge rule, the loss is log.jsonl's (float32).
      const tbFiles = readdirSync(path.join(b, 'tensorboard')).sort();
      assert.equal(tbFiles.length, 2);
      const tbLoss = new Map<number, number>();
      for (const f of tbFiles) {
        for (const e of readEvents(path.join(b, 'tensorboard', f))) {
          if (e.session_log?.status === 'START')
            for (const st of [...tbLoss.keys()]) if (st >= e.step) tbLoss.delete(st);
          const v = e.summary?.value.find((x) => x.tag === 'loss');
          if (v) tbLoss.set(e.step, v.simple_value!);
        }
      }
      assert.deepEqual(
        [...tbLoss],
        (await losses(a)).map(([st, l]) => [st, Math.fround(l)]),
      );
    },
    overfit: { steps: 80, sets: NO_DROPOUT, initialNearLn: 0.5, lossPlot: true },
  },
  {
    variant: UVIT,
    backends: ['wasm', 'tensorflow'],
    resume: { steps: 8, saveEvery: 3, stopAfter: 4, parts: ['transformer', 'ema'] },
    afterResume: async (a, _b, checkpoint) => {
      // The checkpoint is an open-muse MaskGiTUViT folder.
      const cfg = JSON.parse(readFileSync(path.join(checkpoint(a), 'transformer/config.json'), 'utf8'));
      assert.equal(cfg._class_name, 'MaskGiTUViT_v2');
      const m = await MaskGiTUViT.fromSafetensors(path.join(checkpoint(a), 'transformer'));
      assert.deepEqual(m.config.default_micro_conds, [64, 64, 0, 0, 6]);
      m.dispose();
    },
    overfit: { steps: 100, sets: [...NO_DROPOUT, 'ema.enabled=false'] },
  },
  {
    variant: SUPERRES,
    backends: ['wasm'],
    resume: { steps: 6, saveEvery: 3, stopAfter: 4, parts: ['transformer', 'ema'] },
    afterResume: async (a, _b, checkpoint) => {
      const info = JSON.parse(readFileSync(path.join(checkpoint(a), 'sampling.json'), 'utf8'));
      assert.equal(info.lowres_vq, 'builtin');
      assert.deepEqual(info.lowres_grid, [4, 4]);
      assert.deepEqual(info.grid, [8, 8]);
    },
    // High-res tokens are the only ones masked: the initial loss is near ln of the high-res codebook.
    overfit: { steps: 60, sets: [...NO_DROPOUT, 'ema.enabled=false'], initialNearLn: 0.7 },
  },
  {
    variant: COMBINED,
    backends: ['wasm'],
    resume: { steps: 6, saveEvery: 3, stopAfter: 3, sets: ['training.cond_dropout_prob=0.3'], parts: ['transformer'] },
    afterResume: async (a, _b, checkpoint) => {
      const info = JSON.parse(readFileSync(path.join(checkpoint(a), 'sampling.json'), 'utf8'));
      assert.equal(info.text_encoder, 'byt5-tiny,clip:/nowhere', 'sampling.json records both encoders');
    },
    overfit: { steps: 80 },
  },
];

const tmp = mkdtempSync(path.join(os.tmpdir(), 'muse-variants-'));
const tfSkip = await tensorflowSkip();

for (const row of ROWS) {
  const { variant: v } = row;
  const train = (dir: string, run: string, sets: string[], o: Parameters<typeof trainMuse>[3] = {}) =>
    trainMuse(dir, run, [...v.sets, ...sets], { stage: v.stage, ...o });
  const slug = v.name.replace(/\W+/g, '-');

  for (const backend of row.backends) {
    test(
      `${v.name}: a run stopped and resumed gives the same losses and weights as an uninterrupted one (${backend})`,
      { skip: backend === 'tensorflow' && tfSkip },
      async () => {
        await onBackend(backend, async () => {
          const r = row.resume;
          const dir = await v.dataset(tmp, `${slug}-resume-${backend}`, { 0: 10, 1: 9 });
          const sets = [
            `training.max_steps=${r.steps}`,
            `training.save_every=${r.saveEvery}`,
            'training.gradient_accumulation_steps=2',
            'data.shuffle_buffer=5',
            ...(r.sets ?? []),
          ];
          const a = path.join(tmp, `${slug}-run-a-${backend}`);
          const b = path.join(tmp, `${slug}-run-b-${backend}`);
          await train(dir, a, sets);
          const first = await train(dir, b, sets, { stopAfter: r.stopAfter });
          assert.equal(first.step, r.stopAfter);
          assert.equal(first.stoppedBySignal, true);
          const second = await train(dir, b, sets, { resume: 'latest' });
          assert.equal(second.startStep, r.stopAfter);
          const la = await losses(a);
          assert.equal(la.length, r.steps);
          assert.deepEqual(await losses(b), la);
          const checkpoint = (run: string) => path.join(run, 'checkpoints', `step-${String(r.steps).padStart(8, '0')}`);
          for (const part of r.parts) {
            const wa = readFileSync(path.join(checkpoint(a), part, 'model.safetensors'));
            const wb = readFileSync(path.join(checkpoint(b), part, 'model.safetensors'));
            assert.ok(wa.equals(wb), `${part} weights differ after resume`);
          }
          await row.afterResume?.(a, b, checkpoint);
        });
      },
    );
  }

  test(`${v.name}: the loss falls when overfitting one small batch`, async () => {
    await onBackend('wasm', async () => {
      const o = row.overfit;
      const dir = await v.dataset(tmp, `${slug}-overfit`, { 0: 8 });
      const run = path.join(tmp, `${slug}-run-overfit`);
      await train(dir, run, [
        `training.max_steps=${o.steps}`,
        'training.save_every=1000',
        'training.batch_size=8',
        'training.cond_dropout_prob=0',
        'optimizer.lr=3e-3',
        'lr_scheduler.warmup_steps=5',
        'lr_scheduler.schedule=constant',
        'training.label_smoothing=0',
        ...(o.sets ?? []),
      ]);
      const l = (await losses(run)).map(([, x]) => x);
      const start = mean(l.slice(0, 5));
      const end = mean(l.slice(-10));
      if (o.initialNearLn !== undefined)
        assert.ok(
          start > Math.log(v.codebook) - o.initialNearLn,
          `initial loss ${start} should be near ln(${v.codebook})`,
        );
      assert.ok(end < start * 0.5, `loss ${start} -> ${end}`);
      if (o.lossPlot) assert.ok(existsSync(path.join(run, 'loss.png')));
    });
  });
}
