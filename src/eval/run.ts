// `muse-eval run`: sample every prompt of a prompt set from a checkpoint (seeded), write the images and one
// captioned grid per prompt category, compute FID against a real set and the CLIP score, and write eval.json
// (the numbers, the weights' hashes, the settings). Also used during training (src/train/run/evaluation.ts).
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { loadCheckpoint } from '../sample/load.ts';
import { CHECKPOINT_FILES, MODEL_WEIGHTS, checkpointPath } from '../run-folder/index.ts';
import { sample } from '../sample/sample.ts';
import { makeGrid } from '../sample/images.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { ClipScorer } from './clip/score.ts';
import { computeFid, fileSha256, loadInception, RANDOM_INCEPTION_ID, type LoadedInception } from './fid/compute.ts';
import type { FidResize } from './fid/resize.ts';
import { decodeRgb } from './image-sets.ts';
import { byCategory, type Prompt } from './prompts.ts';

export interface EvalRunOptions {
  checkpoint: string;
  prompts: Prompt[];
  /** Real images (folder, dataset or .npz statistics) for FID; none: no FID. */
  real?: string;
  out: string;
  /** Images per prompt (default 1). */
  num?: number;
  seed?: number;
  steps?: number;
  guidance?: number;
  temperature?: number | [number, number];
  /** pytorch-fid weights (safetensors); default: the built-in random-weight Inception (labelled as such). */
  inception?: string | LoadedInception;
  resize?: FidResize;
  /** HF CLIPModel folder for the CLIP score; none: no CLIP score. */
  clip?: string | ClipScorer;
  statsCache?: string;
  /** The data root of a dataset given as `real` (its index lists pending opt-outs); default: the dataset's parent folder. */
  dataRoot?: string;
  log?: (msg: string) => void;
}

const slug = (s: string) =>
  s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40) || 'x';

/** sha256 of every safetensors file under a checkpoint's model folders. */
async function checkpointHashes(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const sub of ['transformer', 'ema'] as const) {
    const f = path.join(checkpointPath(dir, sub), MODEL_WEIGHTS);
    if (existsSync(f)) out[`${CHECKPOINT_FILES[sub]}/${MODEL_WEIGHTS}`] = await fileSha256(f);
  }
  return out;
}

export interface EvalResult {
  fid?: number;
  clip_score?: number;
  clip_score_by_category?: Record<string, number>;
  images: number;
  [k: string]: unknown;
}

export async function runEval(o: EvalRunOptions): Promise<EvalResult> {
  const log = o.log ?? (() => {});
  if (!o.prompts.length) throw new Error('muse-eval run: no prompts');
  const per = o.num ?? 1;
  const imagesDir = path.join(o.out, 'images');
  await fsp.rm(imagesDir, { recursive: true, force: true });
  await fsp.mkdir(imagesDir, { recursive: true });
  const ck = await loadCheckpoint(o.checkpoint);
  let pngs: Buffer[];
  const settings = {
    num_per_prompt: per,
    seed: o.seed ?? 0,
    steps: o.steps ?? 12,
    guidance: o.guidance ?? 4,
    temperature: o.temperature ?? 2,
  };
  let ckHashes: Record<string, string>;
  let ckDir: string;
  try {
    ckDir = ck.dir;
    ckHashes = await checkpointHashes(ck.dir);
    log(`sampling ${o.prompts.length} prompts × ${per} from ${ck.dir} (${ck.weights} weights)`);
    const r = await sample({
      checkpoint: ck,
      prompts: o.prompts.map((p) => p.prompt),
      num: per,
      seed: settings.seed,
      steps: settings.steps,
      guidance: settings.guidance,
      temperature: settings.temperature,
    });
    pngs = r.images.map((im) => im.png);
  } finally {
    ck.dispose();
  }
  // Images are in prompt order, `per` copies each.
  const promptOf = (i: number) => o.prompts[Math.floor(i / per)];
  const width = String(pngs.length - 1).length;
  for (const [i, png] of pngs.entries())
    await writeFileAtomic(
      path.join(imagesDir, `${String(i).padStart(width, '0')}-${slug(promptOf(i).prompt)}.png`),
      png,
    );
  const grids: Record<string, string> = {};
  for (const [cat, prompts] of byCategory(o.prompts)) {
    const cells = pngs.flatMap((png, i) =>
      prompts.includes(promptOf(i)) ? [{ png, caption: promptOf(i).prompt }] : [],
    );
    const file = `grid-${slug(cat)}.png`;
    await writeFileAtomic(path.join(o.out, file), await makeGrid(cells));
    grids[cat] = file;
  }
  const result: EvalResult = { images: pngs.length, checkpoint: ckDir!, weights_sha256: ckHashes!, settings, grids };

  if (o.real) {
    const inception = typeof o.inception === 'object' ? o.inception : await loadInception(o.inception);
    try {
      log(
        `FID against ${o.real} (${inception.random ? 'random-weight Inception: not comparable to published FIDs' : 'Inception ' + inception.weightsId.slice(0, 12)})`,
      );
      const fid = await computeFid(o.real, imagesDir, {
        inception,
        resize: o.resize ?? 'clean',
        cacheDir: o.statsCache,
        dataRoot: o.dataRoot,
        log,
      });
      result.fid = fid.fid;
      result.fid_details = {
        real: o.real,
        real_images: fid.real.n,
        fake_images: fid.fake.n,
        real_from: fid.real.from,
        real_report: fid.real.report && {
          counts: fid.real.report.counts,
          skipped: fid.real.report.skipped.slice(0, 20),
        },
        resize: o.resize ?? 'clean',
        inception_weights: inception.weightsId,
        ...(inception.weightsId === RANDOM_INCEPTION_ID
          ? {
              warning:
                'random-weight Inception (no real weights given): the value measures feature-statistics distance under a fixed random network, not a published-comparable FID',
            }
          : {}),
      };
    } finally {
      if (typeof o.inception !== 'object') inception.model.dispose();
    }
  }
  if (o.clip) {
    const scorer = typeof o.clip === 'object' ? o.clip : await ClipScorer.load(o.clip);
    try {
      const decoded = [];
      for (const png of pngs) {
        const d = await decodeRgb(png);
        decoded.push({ data: d.data, width: d.width, height: d.height });
      }
      const s = await scorer.score(
        decoded,
        pngs.map((_, i) => promptOf(i).prompt),
      );
      result.clip_score = s.score;
      const byCat: Record<string, number> = {};
      for (const cat of byCategory(o.prompts).keys()) {
        const vals = s.perPair.filter((_, i) => promptOf(i).category === cat);
        byCat[cat] = Math.max(0, vals.reduce((a, b) => a + b, 0) / vals.length);
      }
      result.clip_score_by_category = byCat;
      if (typeof o.clip === 'string')
        result.clip_model = {
          dir: path.resolve(o.clip),
          weights_sha256: await fileSha256(path.join(o.clip, 'model.safetensors')).catch(() => null),
        };
    } finally {
      if (typeof o.clip !== 'object') scorer.dispose();
    }
  }
  await writeFileAtomic(path.join(o.out, 'eval.json'), JSON.stringify(result, null, 2) + '\n');
  return result;
}
