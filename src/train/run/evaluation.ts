// Evaluation during training (config section `evaluation`): every `evaluation.every` steps the checkpoint
// just saved samples `num_images` images (the prompt file cycled, sampling settings of the config), and their
// FID against `evaluation.real` and CLIP score go to log.jsonl as `fid` / `clip_score`; eval.png plots them at
// the end. The real set's Inception statistics are computed once and cached in <run>/eval/fid-stats.
import { runPaths } from '../../run-folder/index.ts';
import { renderLossCurve, readJsonl } from '../core/index.ts';
import type { TrainingEvaluator } from './loop.ts';
import type { TrainConfig } from '../config/schema.ts';
import { ClipScorer } from '../../eval/clip/score.ts';
import { loadInception, type LoadedInception } from '../../eval/fid/compute.ts';
import { readPrompts, type Prompt } from '../../eval/prompts.ts';
import { runEval } from '../../eval/run.ts';

export function trainingEvaluator(
  cfg: TrainConfig,
  runDir: string,
  say: (msg: string) => void,
  dataRoot?: string,
): TrainingEvaluator {
  const ev = cfg.evaluation;
  let prompts: Prompt[] | undefined;
  let inception: LoadedInception | undefined;
  let clip: ClipScorer | undefined;
  return {
    every: ev.every,
    async evaluate(step, checkpoint) {
      prompts ??= await readPrompts(ev.prompts!);
      if (ev.real) inception ??= await loadInception(ev.inception ?? undefined);
      if (ev.clip) clip ??= await ClipScorer.load(ev.clip);
      const cycled = Array.from({ length: ev.num_images }, (_, i) => prompts![i % prompts!.length]);
      const t0 = performance.now();
      const r = await runEval({
        checkpoint,
        prompts: cycled,
        real: ev.real ?? undefined,
        out: runPaths(runDir).evalStep(step),
        seed: cfg.sampling.seed,
        steps: cfg.sampling.steps,
        guidance: cfg.sampling.guidance,
        temperature: cfg.sampling.temperature,
        inception,
        resize: ev.resize,
        clip,
        statsCache: runPaths(runDir).fidStats,
        dataRoot,
      });
      const m: Record<string, number> = { eval_ms: Math.round(performance.now() - t0) };
      if (r.fid !== undefined) m.fid = r.fid;
      if (r.clip_score !== undefined) m.clip_score = r.clip_score;
      say(
        `evaluation at step ${step}: ${Object.entries(m)
          .map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(3)}`)
          .join(', ')}${inception?.random ? ' (random-weight Inception)' : ''}`,
      );
      return m;
    },
    async plot(logFile) {
      inception?.model.dispose();
      clip?.dispose();
      inception = undefined;
      clip = undefined;
      const records = (await readJsonl(logFile)).filter((r) => typeof r.step === 'number');
      const series = ['fid', 'clip_score'].filter((k) => records.some((r) => typeof r[k] === 'number'));
      if (!series.length) return;
      await renderLossCurve(records, runPaths(runDir).evalCurve, {
        title: `${cfg.experiment.name}: evaluation`,
        series,
      });
    },
  };
}
