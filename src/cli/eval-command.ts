/** `muse-eval`: FID, CLIP score and sampled evaluations of checkpoints. */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import yargs from 'yargs';
import { BACKEND_NAMES, initBackend, type BackendName } from '../runtime/backend.ts';
import { fidStatsCacheDir, resolveDataRoot } from '../dataset/data-root.ts';
import { FID_RESIZES, type FidResize } from '../eval/fid/resize.ts';
import { runCli, UsageError, usageFailure } from './run-cli.ts';

function positiveInt(name: string, v: number | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isInteger(v) || v < 1) throw new UsageError(`--${name} ${v}: expected an integer >= 1`);
  return v;
}

/** A set of images given by a flag: a folder, a dataset folder or (`npz`) a statistics file; checked before any model loads. */
async function imageSource(flag: string, p: string | undefined, npz: boolean): Promise<void> {
  if (p === undefined) return;
  const st = await stat(p).catch(() => undefined);
  if (!st) throw new Error(`--${flag} ${p}: no such file or folder`);
  if (st.isDirectory() || (npz && p.toLowerCase().endsWith('.npz'))) return;
  throw new Error(
    `--${flag} ${p}: not a folder${npz ? ' (of images, or a dataset) nor a .npz statistics file' : ' of images'}`,
  );
}

/** A model folder given by a flag. */
async function modelFolder(flag: string, p: string | undefined): Promise<void> {
  if (p !== undefined && !(await stat(p).catch(() => undefined))?.isDirectory())
    throw new Error(`--${flag} ${p}: no such directory`);
}

export async function main(argv: string[]): Promise<number> {
  const out = (s: string) => process.stdout.write(s);
  const err = (s: string) => process.stderr.write(s);
  const common = (y: ReturnType<typeof yargs>) =>
    y.option('backend', { choices: BACKEND_NAMES as unknown as string[], default: 'auto' }).option('data-root', {
      type: 'string',
      describe:
        "data root (FID statistics cache in <data root>/fid-stats; its index lists the opt-outs a dataset set leaves out, default: the dataset's parent folder)",
    });
  const fidOpts = (y: ReturnType<typeof yargs>) =>
    y
      .option('inception', {
        type: 'string',
        describe:
          'pytorch-fid Inception weights (.safetensors); default: built-in random weights (values not comparable to published FIDs)',
      })
      .option('resize', {
        choices: FID_RESIZES,
        default: 'clean',
        describe: 'clean: clean-fid PIL bicubic; pytorch-fid: bilinear',
      })
      .option('cache', {
        type: 'boolean',
        default: true,
        describe: 'read and write cached real-set statistics (--no-cache: neither)',
      });
  await yargs(argv)
    .scriptName('muse-eval')
    .command(
      'fid',
      'FID of --fake against --real',
      (y) =>
        fidOpts(common(y))
          .option('real', {
            type: 'string',
            demandOption: true,
            describe: 'folder of images, dataset folder (shards/) or .npz statistics',
          })
          .option('fake', { type: 'string', demandOption: true, describe: 'folder of images, dataset folder or .npz' })
          .option('num', { type: 'number', describe: 'use at most N images of each set' })
          .option('batch', { type: 'number', default: 8 })
          .option('allow-mixed-sizes', {
            type: 'boolean',
            default: false,
            describe: 'keep images whose size differs from the first',
          })
          .option('save-stats', { type: 'string', describe: 'also write the --fake statistics to this .npz' })
          .option('json', { type: 'boolean', default: false }),
      async (a) => {
        const { computeFid, loadInception, setStatistics } = await import('../eval/fid/compute.ts');
        const { saveStatsNpz } = await import('../eval/fid/npz.ts');
        const num = positiveInt('num', a.num);
        const batch = positiveInt('batch', a.batch);
        await imageSource('real', a.real, true);
        await imageSource('fake', a.fake, true);
        await initBackend(a.backend as BackendName, { quiet: a.json });
        const inception = await loadInception(a.inception as string | undefined);
        try {
          const o = {
            inception,
            resize: a.resize as FidResize,
            num,
            batch,
            allowMixedSizes: a['allow-mixed-sizes'],
            dataRoot: a['data-root'] as string | undefined,
            cacheDir: !a.cache ? undefined : fidStatsCacheDir(resolveDataRoot(a['data-root'] as string | undefined)),
            log: a.json ? undefined : (m: string) => err(`${m}\n`),
          };
          const r = await computeFid(a.real, a.fake, o);
          if (a['save-stats'])
            await saveStatsNpz(a['save-stats'], (await setStatistics(a.fake, { ...o, cacheDir: undefined })).stats, {
              weights: inception.weightsId,
              resize: o.resize,
            });
          for (const [side, s] of [
            ['real', r.real],
            ['fake', r.fake],
          ] as const) {
            if (s.report?.skipped.length) {
              err(
                `${side}: skipped ${s.report.skipped.length} of ${s.report.counts.considered} files (${s.report.counts.not_an_image} not images, ${s.report.counts.other_size} of another size):\n`,
              );
              for (const k of s.report.skipped.slice(0, 10)) err(`  ${k.name}: ${k.reason}\n`);
              if (s.report.skipped.length > 10) err(`  … ${s.report.skipped.length - 10} more\n`);
            }
          }
          if (inception.random && !a.json)
            err(
              'note: random-weight Inception (no --inception): the value is only comparable with other values from the same random network\n',
            );
          if (a.json)
            out(JSON.stringify({ ...r, inception_weights: inception.weightsId, resize: o.resize }, null, 2) + '\n');
          else
            out(
              `FID ${r.fid.toFixed(4)} (real ${r.real.n} images${r.real.from === 'cache' ? ', cached statistics' : ''}, fake ${r.fake.n})\n`,
            );
        } finally {
          inception.model.dispose();
        }
      },
    )
    .command(
      'clip-score',
      'CLIP score of images and their prompts',
      (y) =>
        common(y)
          .option('images', {
            type: 'string',
            demandOption: true,
            describe: 'folder of images; image i (name order) goes with prompt i',
          })
          .option('prompts', {
            type: 'string',
            demandOption: true,
            describe: 'prompt file (.tsv PartiPrompts, .csv DrawBench, else one per line)',
          })
          .option('clip', {
            type: 'string',
            demandOption: true,
            describe: 'HF CLIPModel folder (config.json, model.safetensors, tokenizer.json)',
          })
          .option('json', { type: 'boolean', default: false }),
      async (a) => {
        const { readImageFolder } = await import('../eval/image-sets.ts');
        const { readPrompts } = await import('../eval/prompts.ts');
        const { ClipScorer } = await import('../eval/clip/score.ts');
        const prompts = await readPrompts(a.prompts);
        await imageSource('images', a.images, false);
        await modelFolder('clip', a.clip);
        await initBackend(a.backend as BackendName, { quiet: a.json });
        const set = await readImageFolder(a.images, { allowMixedSizes: true });
        const images = [];
        for await (const im of set.images) images.push(im);
        for (const k of set.report.skipped) err(`skipped ${k.name}: ${k.reason}\n`);
        if (images.length !== prompts.length)
          throw new Error(`${a.images}: ${images.length} images but ${a.prompts} has ${prompts.length} prompts`);
        const scorer = await ClipScorer.load(a.clip);
        try {
          const r = await scorer.score(
            images,
            prompts.map((p) => p.prompt),
          );
          if (a.json)
            out(
              JSON.stringify({ clip_score: r.score, per_pair: r.perPair, skipped: set.report.skipped }, null, 2) + '\n',
            );
          else out(`CLIP score ${r.score.toFixed(4)} (${images.length} pairs)\n`);
        } finally {
          scorer.dispose();
        }
      },
    )
    .command(
      'run',
      'sample a prompt set from a checkpoint; FID, CLIP score, eval.json and grids',
      (y) =>
        fidOpts(common(y))
          .option('checkpoint', { type: 'string', demandOption: true, describe: 'checkpoint or run folder' })
          .option('prompts', { type: 'string', demandOption: true })
          .option('real', { type: 'string', describe: 'real images for FID (folder, dataset, .npz)' })
          .option('clip', { type: 'string', describe: 'HF CLIPModel folder for the CLIP score' })
          .option('num', { type: 'number', default: 1, describe: 'images per prompt' })
          .option('seed', { type: 'number', default: 0 })
          .option('steps', { type: 'number', default: 12 })
          .option('guidance', { type: 'number', default: 4 })
          .option('out', { type: 'string', demandOption: true }),
      async (a) => {
        const { readPrompts } = await import('../eval/prompts.ts');
        const { runEval } = await import('../eval/run.ts');
        const prompts = await readPrompts(a.prompts);
        const num = positiveInt('num', a.num);
        const steps = positiveInt('steps', a.steps);
        await modelFolder('checkpoint', a.checkpoint);
        await imageSource('real', a.real, true);
        await modelFolder('clip', a.clip);
        await initBackend(a.backend as BackendName);
        const r = await runEval({
          checkpoint: a.checkpoint,
          prompts,
          real: a.real,
          out: a.out,
          num,
          seed: a.seed,
          steps,
          guidance: a.guidance,
          inception: a.inception as string | undefined,
          resize: a.resize as FidResize,
          clip: a.clip,
          dataRoot: a['data-root'] as string | undefined,
          statsCache: !a.cache ? undefined : fidStatsCacheDir(resolveDataRoot(a['data-root'] as string | undefined)),
          log: (m) => err(`${m}\n`),
        });
        out(
          `${r.images} images -> ${path.join(a.out, 'eval.json')}${r.fid !== undefined ? `; FID ${r.fid.toFixed(4)}` : ''}${r.clip_score !== undefined ? `; CLIP score ${r.clip_score.toFixed(4)}` : ''}\n`,
        );
      },
    )
    .demandCommand(1, 'name a command: fid, clip-score or run')
    .strict()
    .help()
    .fail(usageFailure('muse-eval'))
    .parseAsync();
  return 0;
}

export const cli = (argv?: string[]): Promise<void> => runCli('muse-eval', main, argv);
