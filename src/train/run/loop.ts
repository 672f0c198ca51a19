/**
 * The training loop shared by every stage: resume, steps, JSONL log + live progress line, validation,
 * periodic artefacts (sample / reconstruction grids), checkpoints every N steps and at exit, SIGINT/SIGTERM
 * (finish the current step, save, stop), a non-finite loss (stop, keep the last good checkpoint), and the
 * loss-curve PNG. What a step does is the stage's business (StageRunner).
 *
 * Data parallel (several ranks, `comm`): every rank runs this loop in step; rank 0 alone writes the run folder
 * (checkpoints, log.jsonl, TensorBoard, samples, evaluation, plots) and prints progress. The ranks compare the
 * config, the start step and the weights before the first step, the weights every `weightCheckEvery` steps and
 * before each save, and agree on stopping (a signal seen by any rank stops all after the same step).
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import YAML from 'yaml';
import { writeFileAtomic } from '../../util/atomic.ts';
import { JsonlLog, ProgressLine, TensorBoardWriter, jsonChecksum, readJsonl, renderLossCurve } from '../core/index.ts';
import { SINGLE_PROCESS, assertAgreement, type Communicator } from '../../runtime/mpi.ts';
import { formatDuration } from '../../util/duration.ts';
import type { TrainConfig } from '../config/schema.ts';
import { CheckpointStore, LATEST, runPaths } from '../../run-folder/index.ts';

export interface ResumePoint {
  dir: string;
  state: Record<string, unknown> & { step: number };
}

export interface StageRunner {
  /** Samples per optimisation step (batch × accumulation), for samples/s. */
  readonly samplesPerStep: number;
  /** Image tokens per sample (tokens/s); 0 for pixel stages. */
  readonly tokensPerSample: number;
  /** Loads weights, optimizer, EMA and data position from a checkpoint. */
  restore(from: ResumePoint): Promise<void>;
  /** One optimisation step (0-based index); metrics must include `loss` and `data_ms`. */
  trainStep(step: number): Promise<Record<string, number>>;
  /** Validation metrics (e.g. `val_loss`), computed with the EMA weights when EMA is on. */
  validate?(): Promise<Record<string, number>>;
  /** Writes the checkpoint's files into `dir`; returns extra state (loader position, ...) for trainer_state.json. */
  writeCheckpoint(dir: string): Promise<Record<string, unknown>>;
  /**
   * Sample grids, reconstructions: every `artefactEvery` steps and once at the end; `checkpoint` is the newest saved
   * one. Returns the PNGs written, for TensorBoard.
   */
  artefacts?(step: number, final: boolean, checkpoint: string | null): Promise<ArtefactImage[] | void>;
  readonly artefactEvery?: number;
  /** A checksum of the trained weights, compared across data-parallel ranks. */
  weightsChecksum?(): Promise<number>;
  dispose(): void;
}

/** A PNG a runner wrote (sample grid, reconstructions), shown in TensorBoard under `tag`. */
export interface ArtefactImage {
  tag: string;
  file: string;
}

export interface LoopOptions {
  config: TrainConfig;
  runDir: string;
  runner: StageRunner;
  /** 'latest', a checkpoint folder, or undefined (a fresh run; refused when the run has checkpoints). */
  resume?: string;
  /** With resume 'latest': start at step 0 when the run has no checkpoint yet (else that is refused). */
  allowFresh?: boolean;
  /** Progress and messages (stderr). */
  out?: NodeJS.WriteStream;
  /** For tests: stop (as on SIGTERM) after this many steps of this invocation. */
  stopAfter?: number;
  /** FID / CLIP score every `every` steps on the checkpoint just saved (src/train/run/evaluation.ts). */
  evaluator?: TrainingEvaluator;
  /** Data-parallel ranks (default: this process alone). */
  comm?: Communicator;
  /** Ranks compare weight checksums every this many steps (and at each save); default 100. */
  weightCheckEvery?: number;
}

export interface TrainingEvaluator {
  readonly every: number;
  /** Metrics of the checkpoint saved at `step`, written to log.jsonl. */
  evaluate(step: number, checkpoint: string): Promise<Record<string, number>>;
  /** Plots the logged metrics once the run ends. */
  plot(logFile: string): Promise<void>;
}

export interface LoopResult {
  startStep: number;
  step: number;
  stoppedBySignal: boolean;
  checkpoint: string | null;
}

export async function runTrainingLoop(opts: LoopOptions): Promise<LoopResult> {
  const { config: cfg, runDir, runner } = opts;
  const comm = opts.comm ?? SINGLE_PROCESS;
  // Rank 0 alone writes files and prints; the others only train.
  const first = comm.rank === 0;
  const out = first ? (opts.out ?? process.stderr) : (QUIET as unknown as NodeJS.WriteStream);
  const say = (msg: string) => out.write(`${msg}\n`);
  const t = cfg.training;
  const run = runPaths(runDir);
  const store = new CheckpointStore(run.checkpoints, { keepLast: t.keep_last });

  let startStep = 0;
  let savedStep = -1;
  if (opts.resume) {
    const from = await store.resolve(opts.resume, (msg) => say(`warning: ${msg}`));
    if (from) {
      await runner.restore(from);
      startStep = from.state.step;
      savedStep = startStep;
      say(`resumed from ${from.dir} at step ${startStep}`);
    } else {
      if (!opts.allowFresh) throw new Error(nothingToResume(runDir, opts.resume));
      say(`no checkpoint in ${run.checkpoints} yet: starting at step 0 (--allow-fresh)`);
    }
  } else if ((await store.list()).length) {
    throw new Error(`${runDir} already has checkpoints: pass --resume latest to continue it, or choose another --out`);
  }
  if (first) await mkdir(runDir, { recursive: true });

  const logFile = run.log;
  const log = first ? await JsonlLog.open(logFile, { truncateAfterStep: startStep }) : null;
  // TensorBoard gets the same numbers as log.jsonl, and the artefact PNGs.
  const tb =
    t.tensorboard && first
      ? TensorBoardWriter.open(run.tensorboard, { resumedAfterStep: startStep > 0 ? startStep : undefined })
      : null;
  const logMetrics = (record: Record<string, unknown>) => {
    log?.write(record);
    const { step: s, ...rest } = record;
    tb?.scalars(
      s as number,
      Object.fromEntries(Object.entries(rest).filter((e): e is [string, number] => typeof e[1] === 'number')),
    );
  };
  const artefacts = async (final: boolean) => {
    const images = (await runner.artefacts!(step, final, lastSaved)) ?? [];
    for (const im of images) tb?.image(step, im.tag, await readFile(im.file));
  };
  const progress = new ProgressLine(out);
  let stopRequested = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopRequested) {
      say(`\n${sig} again: exiting without saving`);
      process.exit(130);
    }
    stopRequested = true;
    say(`\n${sig}: finishing the current step, then saving a checkpoint (send again to exit at once)`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  if (first) await saveResolvedConfig(cfg, runDir, !!opts.resume, out);

  const checkWeights = async (when: string) => {
    if (comm.size > 1 && runner.weightsChecksum)
      assertAgreement(comm, `the weights ${when} (a rank diverged)`, await runner.weightsChecksum());
  };
  if (comm.size > 1) {
    // Before the first step: ranks given different configs, or resuming different checkpoints, are refused.
    assertAgreement(
      comm,
      'the resolved config (give every rank the same config file and --set flags)',
      jsonChecksum(cfg),
    );
    assertAgreement(comm, 'the step to start from (is the run folder shared by every rank?)', startStep);
    await checkWeights(`at step ${startStep}`);
  }
  const weightCheckEvery = opts.weightCheckEvery ?? 100;

  let step = startStep;
  let lastSaved: string | null = null;
  const save = async () => {
    await checkWeights(`saved at step ${step}`);
    savedStep = step;
    if (!first) return;
    // The store writes trainer_state.json after `write`, so the runner's extra state (loader position) is in it.
    const state: Record<string, unknown> = {
      config: cfg,
      rng: { kind: 'derived from training.seed and the step', seed: t.seed },
    };
    lastSaved = await store.save(
      step,
      async (dir) => {
        Object.assign(state, await runner.writeCheckpoint(dir));
      },
      state,
    );
  };

  const validate = async () => {
    if (!first) return;
    const v = runner.validate ? await runner.validate() : {};
    if (Object.keys(v).length) logMetrics({ step, ...v });
  };

  const started = performance.now();
  let logClosed = false;
  try {
    while (step < t.max_steps && !stopRequested) {
      // Yield to the event loop: with data in memory a step is all microtasks, and signals would never be seen.
      await new Promise((resolve) => setImmediate(resolve));
      if (stopRequested) break;
      const stepStart = performance.now();
      const m = await runner.trainStep(step);
      step++;
      const stepMs = performance.now() - stepStart;
      const record: Record<string, unknown> = {
        step,
        ...m,
        step_ms: round(stepMs),
        samples_per_s: round((runner.samplesPerStep * 1000) / stepMs),
        ...(runner.tokensPerSample
          ? { tokens_per_s: round((runner.samplesPerStep * runner.tokensPerSample * 1000) / stepMs) }
          : {}),
      };
      if (step % t.log_every === 0 || step === t.max_steps) logMetrics(record);
      const elapsed = (performance.now() - started) / 1000;
      const eta = ((t.max_steps - step) * elapsed) / Math.max(1, step - startStep);
      progress.update(
        `step ${step}/${t.max_steps} loss ${m.loss.toFixed(4)} lr ${m.lr?.toExponential(2) ?? '-'} ` +
          `${record.samples_per_s} samples/s, ETA ${formatDuration(eta)}`,
      );
      if (t.validate_every && step % t.validate_every === 0) await validate();
      if (step % t.save_every === 0) await save();
      else if (step % weightCheckEvery === 0) await checkWeights(`after step ${step}`);
      const ev = opts.evaluator;
      if (first && ev && step % ev.every === 0 && lastSaved)
        logMetrics({ step, ...(await ev.evaluate(step, lastSaved)) });
      if (first && runner.artefacts && runner.artefactEvery && step % runner.artefactEvery === 0)
        await artefacts(false);
      if (opts.stopAfter !== undefined && step - startStep >= opts.stopAfter) stopRequested = true;
      if (comm.size > 1) stopRequested = anyRank(comm, stopRequested);
    }
    progress.done();
    if (savedStep !== step) await save();
    if (t.validate_every && step % t.validate_every !== 0 && step > startStep) await validate();
    await log?.close();
    logClosed = true;
    if (first) {
      await writeLossCurves(logFile, runDir, cfg);
      if (opts.evaluator) await opts.evaluator.plot(logFile);
      if (runner.artefacts && !stopRequested) await artefacts(true);
    }
    say(
      stopRequested
        ? `stopped at step ${step}; checkpoint ${lastSaved}`
        : `done: ${step} steps, checkpoint ${lastSaved}`,
    );
    return { startStep, step, stoppedBySignal: stopRequested, checkpoint: lastSaved };
  } catch (err) {
    progress.done();
    if (!logClosed && log) {
      log.write({ step, error: (err as Error).message });
      await log.close();
    }
    throw err;
  } finally {
    tb?.close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** The refusal of `--resume latest` on a run folder without checkpoints (a mistyped --out would silently start over). */
function nothingToResume(runDir: string, spec: string): string {
  const where = existsSync(runDir) ? `${runDir} has no checkpoint` : `the run folder ${runDir} does not exist`;
  return `--resume ${spec}: ${where}, so there is nothing to resume. Check --out (or experiment.output_dir), or add --allow-fresh to start the run at step 0 when it has no checkpoint yet`;
}

/**
 * The same refusal before any model or data is loaded (muse-train calls it first, so a wrong folder is reported
 * at once). A checkpoint folder given by path is checked later, when it is verified.
 */
export async function assertResumable(
  runDir: string,
  resume: string | undefined,
  allowFresh: boolean,
  keepLast: number,
): Promise<void> {
  if (resume !== LATEST || allowFresh) return;
  const store = new CheckpointStore(runPaths(runDir).checkpoints, { keepLast });
  if ((await store.list()).length === 0) throw new Error(nothingToResume(runDir, resume));
}

const round = (x: number) => Math.round(x * 100) / 100;

/** What the ranks other than 0 print: nothing (errors still reach stderr through the command line). */
const QUIET = { write: () => true };

/** True on every rank when it is true on any (a stop request seen by one rank stops all after the same step). */
function anyRank(comm: Communicator, flag: boolean): boolean {
  const buf = Float64Array.of(flag ? 1 : 0);
  comm.allreduceF64(buf, 'max');
  return buf[0] > 0;
}

/** config.yaml in the run folder: the resolved config. On resume, differences from the saved one are listed. */
async function saveResolvedConfig(
  cfg: TrainConfig,
  runDir: string,
  resuming: boolean,
  out: NodeJS.WriteStream,
): Promise<void> {
  const file = runPaths(runDir).config;
  if (resuming && existsSync(file)) {
    const before = YAML.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
    const changed = diffKeys(before, cfg as unknown as Record<string, unknown>, '');
    if (changed.length) out.write(`note: the config differs from the run's saved config in: ${changed.join(', ')}\n`);
  }
  await writeFileAtomic(file, `# resolved by muse-train ${new Date().toISOString()}\n${YAML.stringify(cfg)}`);
}

/** Dotted keys whose values differ between two configs. */
function diffKeys(a: unknown, b: unknown, prefix: string): string[] {
  if (typeof a === 'object' && a && typeof b === 'object' && b && !Array.isArray(a) && !Array.isArray(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    return [...keys].flatMap((k) =>
      diffKeys((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], prefix ? `${prefix}.${k}` : k),
    );
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [prefix];
}

/** loss.png (training and validation loss by step). */
export async function writeLossCurves(logFile: string, runDir: string, cfg: TrainConfig): Promise<void> {
  const records = (await readJsonl(logFile)).filter((r) => typeof r.step === 'number');
  if (!records.some((r) => typeof r.loss === 'number')) return;
  await renderLossCurve(records, runPaths(runDir).lossCurve, {
    title: `${cfg.experiment.name} (${cfg.stage})`,
    series: ['loss', 'val_loss'],
    smooth: 0.9,
  });
}
