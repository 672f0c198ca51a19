/**
 * The playground's generator: one generation at a time (a FIFO queue with a bounded wait list), each job's
 * progress kept as a list of events that any number of listeners (server-sent event streams) replay and follow.
 * With two checkpoints every job runs both with the same settings and seed, for a side-by-side comparison.
 */
import { randomBytes } from 'node:crypto';
import { appendFile } from 'node:fs/promises';
import { loadCheckpoint, type LoadedCheckpoint } from '../../sample/load.ts';
import { sample } from '../../sample/sample.ts';

export interface PlaySettings {
  prompt: string;
  negativePrompt?: string;
  guidance: number;
  steps: number;
  seed: number;
  num: number;
}

export type PlayEvent =
  | { type: 'queued'; position: number }
  | { type: 'start' }
  | { type: 'step'; checkpoint: number; step: number; steps: number; images: string[] }
  | { type: 'image'; checkpoint: number; index: number; src: string }
  | { type: 'done' }
  | { type: 'error'; message: string };

export class PlayError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

export interface Job {
  id: string;
  settings: PlaySettings;
  created: string;
  events: PlayEvent[];
  listeners: Set<(e: PlayEvent) => void>;
  finished: boolean;
}

const dataUrl = (png: Buffer) => `data:image/png;base64,${png.toString('base64')}`;
const KEEP_JOBS = 100;

export class Playground {
  readonly jobs = new Map<string, Job>();
  private loaded?: Promise<LoadedCheckpoint[]>;
  private chain: Promise<void> = Promise.resolve();
  private waiting = 0;
  private closed = false;

  constructor(
    readonly checkpoints: string[],
    private readonly opts: { maxQueue: number; feedbackFile?: string },
  ) {
    if (checkpoints.length > 2)
      throw new PlayError(400, `the playground compares at most two checkpoints (got ${checkpoints.length})`);
  }

  /** Loads the checkpoints (once); a failure is reported and retried on the next call. */
  load(): Promise<LoadedCheckpoint[]> {
    this.loaded ??= Promise.all(this.checkpoints.map((c) => loadCheckpoint(c))).then(
      (cks) => {
        for (const ck of cks)
          if (ck.transformer.config.num_classes)
            throw new PlayError(
              400,
              `${ck.dir} is class-conditional; the playground needs a text-conditioned checkpoint`,
            );
        return cks;
      },
      (err: Error) => {
        this.loaded = undefined;
        throw err;
      },
    );
    return this.loaded;
  }

  /** Queues a generation; 429 when the wait list is full. */
  submit(settings: PlaySettings): Job {
    if (this.closed) throw new PlayError(503, 'the server is shutting down');
    if (this.waiting >= this.opts.maxQueue + 1)
      throw new PlayError(429, `the playground is busy (${this.waiting} generation(s) queued); try again in a moment`);
    const job: Job = {
      id: randomBytes(8).toString('hex'),
      settings,
      created: new Date().toISOString(),
      events: [],
      listeners: new Set(),
      finished: false,
    };
    this.jobs.set(job.id, job);
    if (this.jobs.size > KEEP_JOBS) {
      for (const [id, j] of this.jobs) {
        if (this.jobs.size <= KEEP_JOBS) break;
        if (j.finished) this.jobs.delete(id);
      }
    }
    this.emit(job, { type: 'queued', position: this.waiting });
    this.waiting++;
    this.chain = this.chain.then(() => this.run(job)).finally(() => this.waiting--);
    return job;
  }

  private emit(job: Job, e: PlayEvent): void {
    job.events.push(e);
    if (e.type === 'done' || e.type === 'error') job.finished = true;
    for (const l of job.listeners) l(e);
  }

  private async run(job: Job): Promise<void> {
    if (this.closed) return this.emit(job, { type: 'error', message: 'the server is shutting down' });
    this.emit(job, { type: 'start' });
    try {
      const cks = await this.load();
      const s = job.settings;
      for (const [c, ck] of cks.entries()) {
        const res = await sample({
          checkpoint: ck,
          prompts: [s.prompt],
          negativePrompt: s.negativePrompt || undefined,
          guidance: s.guidance,
          steps: s.steps,
          seed: s.seed,
          num: s.num,
          onStep: ({ step, steps, pngs }) =>
            this.emit(job, { type: 'step', checkpoint: c, step, steps, images: pngs.map(dataUrl) }),
        });
        res.images.forEach((im, i) => this.emit(job, { type: 'image', checkpoint: c, index: i, src: dataUrl(im.png) }));
      }
      this.emit(job, { type: 'done' });
    } catch (err) {
      this.emit(job, { type: 'error', message: (err as Error).message });
    }
  }

  /** Stores a thumbs up/down with the job's settings (one JSON line). */
  async feedback(
    jobId: string,
    checkpoint: number,
    image: number,
    vote: 'up' | 'down',
  ): Promise<Record<string, unknown>> {
    const job = this.jobs.get(jobId);
    if (!job) throw new PlayError(404, `no generation ${JSON.stringify(jobId)} (it may have expired)`);
    if (!job.events.some((e) => e.type === 'image' && e.checkpoint === checkpoint && e.index === image))
      throw new PlayError(400, `generation ${jobId} has no image ${image} of checkpoint ${checkpoint}`);
    const line = {
      time: new Date().toISOString(),
      job: jobId,
      checkpoint: this.checkpoints[checkpoint],
      image,
      vote,
      settings: job.settings,
    };
    if (!this.opts.feedbackFile) throw new PlayError(500, 'no feedback file configured');
    await appendFile(this.opts.feedbackFile, JSON.stringify(line) + '\n');
    return line;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.chain.catch(() => undefined);
    if (this.loaded) for (const ck of await this.loaded.catch(() => [])) ck.dispose();
  }
}
