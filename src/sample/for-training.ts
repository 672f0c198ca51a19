// The trainer's periodic sample grid (src/train/run/run-training.ts calls this with the config's `sampling`
// section): decode the just-written checkpoint's prompts (or class ids) and write the captioned grid PNG.
import { writeFileAtomic } from '../util/atomic.ts';
import { makeGrid } from './images.ts';
import { loadCheckpoint } from './load.ts';
import { sample } from './sample.ts';
import type { TrainConfig } from '../train/config/schema.ts';

/** The config's `sampling` section. */
export type TrainingSampling = Pick<
  TrainConfig['sampling'],
  'prompts' | 'class_ids' | 'steps' | 'guidance' | 'temperature' | 'seed'
>;

export async function sampleGridForTraining(checkpointDir: string, outPng: string, s: TrainingSampling): Promise<void> {
  const ck = await loadCheckpoint(checkpointDir);
  try {
    const classModel = !!ck.transformer.config.num_classes;
    const result = await sample({
      checkpoint: ck,
      ...(classModel ? { classIds: s.class_ids, guidance: 1 } : { prompts: s.prompts, guidance: s.guidance }),
      steps: s.steps,
      temperature: s.temperature,
      seed: s.seed,
    });
    await writeFileAtomic(outPng, await makeGrid(result.images.map((im) => ({ png: im.png, caption: im.prompt }))));
  } finally {
    ck.dispose();
  }
}
