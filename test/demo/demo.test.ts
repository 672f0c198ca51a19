// npm run demo's pipeline end to end with very short training (the real run's numbers are in its report.json):
// every stage runs, the artefacts are written and report.json has the fields the demo promises.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { checkTargets, runDemo } from '../../src/demo/run-demo.ts';

test('the demo runs every stage and writes its report and images', async () => {
  const out = path.join(mkdtempSync(path.join(os.tmpdir(), 'muse-demo-')), 'demo');
  const lines: string[] = [];
  try {
    const report = (await runDemo({
      outDir: out,
      backend: 'wasm',
      vqganSets: [
        'training.max_steps=2',
        'training.batch_size=4',
        'training.validate_every=0',
        'vqgan_training.recon_every=0',
      ],
      transformerSets: ['training.max_steps=2', 'training.validate_every=0'],
      imagesPerPrompt: 2,
      log: (m) => lines.push(m),
    })) as Record<string, Record<string, unknown>>;
    for (const part of ['held_out', 'train_prompts', 'baseline', 'vqgan_reconstructions']) {
      for (const k of ['color_adherence', 'shape_adherence', 'both_colors_adherence']) {
        const a = report[part][k] as number;
        assert.ok(a >= 0 && a <= 1, `${part}.${k} ${a}`);
      }
    }
    // report.json says how many wasm threads ran (one unless MUSE_WASM_THREADS asks for more).
    if (!process.env.MUSE_WASM_THREADS) assert.equal(report.wasm_threads, 1);
    // The VQGAN check scores every usable image of its held-out shard.
    assert.ok(
      (report.vqgan_reconstructions.images as number) > 50,
      `${report.vqgan_reconstructions.images} reconstructions scored`,
    );
    for (const stage of [
      'fetch_s',
      'dedup_s',
      'vqgan_s',
      'vqgan-check_s',
      'text-encoder_s',
      'tokenize_s',
      'transformer_s',
      'sample_s',
      'fid_s',
      'total_s',
    ]) {
      assert.equal(typeof report.wall_time_s[stage], 'number', stage);
    }
    // Two training steps meet no target: the verdict must say which, with numbers.
    const target = report.target as unknown as {
      checks: Array<{ what: string; met: boolean }>;
      met: boolean;
      verdict: string;
    };
    assert.equal(target.checks.length, 5);
    assert.equal(target.met, false);
    assert.match(target.verdict, /^SHORT OF TARGET: .*shape right [\d.]+ \(target 0\.[57]\)/);
    assert.ok(existsSync(path.join(out, 'text-encoder', 'tokenizer.json')));
    const fid = report.fid as { fid: Record<string, number>; inception: string };
    for (const k of ['held_out', 'train_prompts', 'baseline', 'real_vs_real'])
      assert.ok(Number.isFinite(fid.fid[k]) && fid.fid[k] >= 0, `fid.${k} ${fid.fid[k]}`);
    assert.match(fid.inception, /random/);
    const onDisk = JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8'));
    assert.deepEqual(onDisk.held_out, report.held_out);
    for (const f of [
      'samples-held-out.png',
      'samples-train.png',
      'samples-baseline.png',
      'vqgan-reconstructions.png',
      'vqgan-loss.png',
      'transformer-loss.png',
    ]) {
      assert.ok(existsSync(path.join(out, f)), f);
    }
    // 24 held-out prompts (imagesPerPrompt = 2 each), 120 distinct training captions (one image each).
    assert.equal(report.held_out.images, 48);
    assert.equal(report.baseline.images, 48);
    assert.equal(report.train_prompts.images, 120);
    assert.equal(new Set(report.train_prompts.prompts as string[]).size, 120);
    assert.deepEqual((report.fid as unknown as { generated_images: unknown }).generated_images, {
      held_out: 48,
      train_prompts: 120,
      baseline: 48,
    });
    // Held-out prompts are the four combinations no training caption has.
    const combos = (report.held_out.combinations as string[]).map((p) => p.split(' on ')[0]);
    assert.deepEqual([...new Set(combos)], ['a red triangle', 'a blue star', 'a yellow cross', 'a green square']);
    assert.match(lines.join('\n'), /both colours right: held-out prompts \d+%/);
  } finally {
    await tf.setBackend('cpu');
  }
});

test('checkTargets: each target against its value, and a miss says whether the VQGAN or the transformer fell short', () => {
  const a = (both: number, shape: number) => ({
    images: 10,
    color_adherence: both,
    background_adherence: both,
    shape_adherence: shape,
    both_colors_adherence: both,
  });
  const good = checkTargets(32, a(0.85, 0.6), a(0.9, 0.75), a(0.1, 0.2), a(1, 0.9));
  assert.equal(good.met, true);
  assert.equal(good.verdict, 'all targets met');
  const small = checkTargets(16, a(0.85, 0.6), a(0.9, 0.75), a(0.1, 0.2), a(1, 0.9));
  assert.equal(small.met, false);
  assert.match(small.verdict, /image side \(px\) 16 \(target 32\)/);
  // Shape missed on training prompts; the reconstructions themselves only reach 0.4: the tokenizer caps it.
  const capped = checkTargets(32, a(0.85, 0.6), a(0.9, 0.3), a(0.1, 0.2), a(1, 0.4));
  assert.match(
    capped.verdict,
    /training prompts: shape right 0\.3 \(target 0\.7\) \(the VQGAN's own reconstructions of real images score 0\.4/,
  );
  // Colours missed although reconstructions are right: the transformer falls short. A baseline close to the prompts fails too.
  const weak = checkTargets(32, a(0.5, 0.6), a(0.9, 0.75), a(0.4, 0.2), a(0.95, 0.9));
  assert.match(
    weak.verdict,
    /held-out prompts: both colours right 0\.5 \(target 0\.8\) \(reconstructions score 0\.95: the transformer falls short\)/,
  );
  assert.match(weak.verdict, /baseline/);
  assert.deepEqual(
    weak.checks.map((c) => c.met),
    [true, false, true, true, false],
  );
});
