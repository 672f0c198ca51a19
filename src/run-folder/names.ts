/**
 * Every name inside a run folder (`muse-train --out`), and inside each of its checkpoints. Nothing else spells
 * these names: the trainer, the sampler, `muse-eval`, the playground and the demo build their paths here.
 *
 *   <run>/config.yaml                 the resolved config
 *   <run>/log.jsonl                   metrics, one JSON object per line
 *   <run>/tensorboard/                the same metrics and the artefact images as TensorBoard events
 *   <run>/loss.png, eval.png          curves drawn at the end of a run
 *   <run>/samples/, reconstructions/  artefact grids: step-XXXXXXXX.png, final.png
 *   <run>/eval/step-XXXXXXXX/         evaluation during training; eval/fid-stats/ caches the real set's statistics
 *   <run>/checkpoints/step-XXXXXXXX/  checkpoints (checkpoint-store.ts), `latest` names the newest
 */
import path from 'node:path';

/** Names directly under the run folder. */
export const RUN_FILES = {
  config: 'config.yaml',
  log: 'log.jsonl',
  tensorboard: 'tensorboard',
  lossCurve: 'loss.png',
  evalCurve: 'eval.png',
  samples: 'samples',
  reconstructions: 'reconstructions',
  eval: 'eval',
  fidStats: 'fid-stats',
  checkpoints: 'checkpoints',
} as const;

/** The file in `checkpoints/` naming the newest checkpoint folder. */
export const LATEST = 'latest';

/** Names inside one checkpoint folder. Both training stages save through these. */
export const CHECKPOINT_FILES = {
  /** Written last by the store: the step, the runner's state and every file's size and sha256. */
  trainerState: 'trainer_state.json',
  /** MUSE: how to decode and condition (sampling-json.ts). */
  sampling: 'sampling.json',
  /** MUSE: raw transformer weights (config.json + model.safetensors). */
  transformer: 'transformer',
  /** EMA weights, the layout of the model folder beside it (both stages). */
  ema: 'ema',
  /** AdamW moments (both stages). */
  optimizer: 'optimizer.safetensors',
  /** MUSE: the copy of the VQGAN whose tokens the transformer predicts (absent for 'builtin'). */
  vq: 'vq',
  /** MUSE super-res: the copy of the base model's VQGAN. */
  lowresVq: 'lowres_vq',
  /** MUSE: copies of the text encoder folders, one per encoder under its own folder name. */
  textEncoders: 'text_encoders',
  /** VQGAN stage: the VQGAN (config.json + model.safetensors, usable as `--vq DIR`). */
  vqgan: 'vqgan',
  /** VQGAN stage, GAN on: the discriminator and its optimizer. */
  discriminator: 'discriminator.safetensors',
  discOptimizer: 'disc_optimizer.safetensors',
  /** VQGAN stage: codebook last-used steps. */
  vqganState: 'trainer_state.safetensors',
} as const;

/** A model folder's config file and single weights file (open-muse / HF layout). */
export const MODEL_CONFIG = 'config.json';
export const MODEL_WEIGHTS = 'model.safetensors';

const STEP_RE = /^step-(\d{8,})$/;

/** `step-00000012`: a checkpoint folder, an evaluation folder; `step-00000012.png`: an artefact grid. */
export function stepName(step: number): string {
  return `step-${String(step).padStart(8, '0')}`;
}

/** The step a `step-XXXXXXXX` folder name holds, or null for any other name. */
export function parseStepName(name: string): number | null {
  const m = STEP_RE.exec(name);
  return m ? Number(m[1]) : null;
}

/** An artefact grid's file name: `final.png` at the end of a run, else `step-XXXXXXXX.png`. */
export function artefactName(step: number, final: boolean): string {
  return final ? 'final.png' : `${stepName(step)}.png`;
}

/** Paths of a run folder. */
export function runPaths(runDir: string) {
  const at = (name: string) => path.join(runDir, name);
  return {
    root: runDir,
    config: at(RUN_FILES.config),
    log: at(RUN_FILES.log),
    tensorboard: at(RUN_FILES.tensorboard),
    lossCurve: at(RUN_FILES.lossCurve),
    evalCurve: at(RUN_FILES.evalCurve),
    checkpoints: at(RUN_FILES.checkpoints),
    /** An artefact grid of kind `samples` or `reconstructions`. */
    artefact: (kind: 'samples' | 'reconstructions', step: number, final: boolean) =>
      path.join(runDir, RUN_FILES[kind], artefactName(step, final)),
    /** The output folder of the evaluation at `step`. */
    evalStep: (step: number) => path.join(runDir, RUN_FILES.eval, stepName(step)),
    fidStats: path.join(runDir, RUN_FILES.eval, RUN_FILES.fidStats),
  };
}

/** A path inside a checkpoint folder. */
export function checkpointPath(dir: string, name: keyof typeof CHECKPOINT_FILES): string {
  return path.join(dir, CHECKPOINT_FILES[name]);
}
