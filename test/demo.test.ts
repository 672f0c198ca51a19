// npm run demo's pipeline end to end with very short training (the real run's numbers are in its report.json):
// every stage runs, the artefacts are written and report.json has the fields issue 7 asks for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { runDemo } from '../src/demo/run-demo.ts';

test('the demo runs every stage and writes its report and images', async () => {
  const out = path.join(mkdtempSync(path.join(os.tmpdir(), 'muse-demo-')), 'demo');
  const lines: string[] = [];
  try {
    const report = await runDemo({
      outDir: out,
      backend: 'wasm',
      vqganSets: ['training.max_steps=2', 'training.batch_size=4', 'training.validate_every=0', 'vqgan_training.recon_every=0'],
      transformerSets: ['training.max_steps=2', 'training.validate_every=0'],
      imagesPerPrompt: 1,
      log: (m) => lines.push(m),
    }) as Record<string, Record<string, unknown>>;
    for (const part of ['held_out', 'train_prompts', 'baseline']) {
      const a = report[part].color_adherence as number;
      assert.ok(a >= 0 && a <= 1, `${part}.color_adherence ${a}`);
    }
    for (const stage of ['fetch_s', 'dedup_s', 'vqgan_s', 'tokenize_s', 'transformer_s', 'sample_s', 'fid_s', 'total_s']) {
      assert.equal(typeof report.wall_time_s[stage], 'number', stage);
    }
    assert.equal(typeof report.target.verdict, 'string');
    const fid = report.fid as { fid: Record<string, number>; inception: string };
    for (const k of ['held_out', 'train_prompts', 'baseline', 'real_vs_real']) assert.ok(Number.isFinite(fid.fid[k]) && fid.fid[k] >= 0, `fid.${k} ${fid.fid[k]}`);
    assert.match(fid.inception, /random/);
    const onDisk = JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8'));
    assert.deepEqual(onDisk.held_out, report.held_out);
    for (const f of ['samples-held-out.png', 'samples-train.png', 'samples-baseline.png', 'vqgan-reconstructions.png', 'vqgan-loss.png', 'transformer-loss.png']) {
      assert.ok(existsSync(path.join(out, f)), f);
    }
    // Held-out prompts are the four combinations no training caption has.
    const combos = (report.held_out.combinations as string[]).map((p) => p.split(' on ')[0]);
    assert.deepEqual([...new Set(combos)], ['a red triangle', 'a blue star', 'a yellow cross', 'a green square']);
    assert.match(lines.join('\n'), /colour adherence: held-out prompts \d+%/);
  } finally {
    await tf.setBackend('cpu');
  }
});
