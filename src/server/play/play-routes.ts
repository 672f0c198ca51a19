/** The playground: a page, a generation API (queued), its progress as server-sent events, and feedback. */
import type { FastifyInstance } from 'fastify';
import path from 'node:path';
import { HttpError, type ServerContext } from '../app.ts';
import { html, page } from '../html.ts';
import { PlayError, type PlayEvent, type Playground } from './playground.ts';

const SETTINGS_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['prompt'],
  properties: {
    prompt: { type: 'string', minLength: 1, maxLength: 300 },
    negativePrompt: { type: 'string', maxLength: 300 },
    guidance: { type: 'number', minimum: 0, maximum: 20 },
    steps: { type: 'integer', minimum: 1, maximum: 48 },
    seed: { type: 'integer', minimum: 0, maximum: 4294967295 },
    num: { type: 'integer', minimum: 1, maximum: 4 },
  },
};

const wrap = async <T>(fn: () => T | Promise<T>): Promise<T> => {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof PlayError) throw new HttpError(err.statusCode, err.message);
    throw err;
  }
};

export function playRoutes(app: FastifyInstance, ctx: ServerContext, play: Playground): void {
  app.get('/play', async (_req, reply) => {
    const names = play.checkpoints.map((c) => path.resolve(c).split(path.sep).slice(-2).join('/'));
    return reply.type('text/html').send(
      page(
        'Playground',
        html`<h1>Playground</h1>
          <p class="muted">
            Checkpoint${names.length > 1 ? 's (side by side)' : ''}: ${names.join(' · ')}. One generation runs at a
            time; others wait in a queue.
          </p>
          <form id="play-form" class="row">
            <label>Prompt<input id="prompt" size="50" required value="a red circle on a blue background" /></label
            ><label>Negative prompt<input id="negative" size="20" /></label>
            <label>Guidance<input id="guidance" type="number" step="0.5" min="0" max="20" value="4" /></label
            ><label>Steps<input id="steps" type="number" min="1" max="48" value="8" /></label>
            <label>Seed<input id="seed" type="number" min="0" value="0" /></label
            ><label>Images<input id="num" type="number" min="1" max="4" value="1" /></label
            ><button id="generate">Generate</button>
          </form>
          <p id="play-status" class="muted"></p>
          <div class="side" id="outputs" data-checkpoints="${names.length}">
            ${names.map(
              (n, i) =>
                html`<div>
                  <h2>${n}</h2>
                  <div id="out-${i}"></div>
                </div>`,
            )}
          </div>`,
        { script: 'play.js', play: true },
      ),
    );
  });

  app.post<{
    Body: { prompt: string; negativePrompt?: string; guidance?: number; steps?: number; seed?: number; num?: number };
  }>(
    '/api/play/generate',
    {
      config: { rateLimit: { max: ctx.opts.generateRateLimit, timeWindow: '1 minute' } },
      schema: { body: SETTINGS_SCHEMA },
    },
    async (req, reply) => {
      const b = req.body;
      const job = await wrap(() =>
        play.submit({
          prompt: b.prompt,
          negativePrompt: b.negativePrompt,
          guidance: b.guidance ?? 4,
          steps: b.steps ?? 8,
          seed: b.seed ?? 0,
          num: b.num ?? 1,
        }),
      );
      return reply.status(202).send({
        job: job.id,
        events: `/api/play/jobs/${job.id}/events`,
        position: (job.events[0] as { position: number }).position,
      });
    },
  );

  app.get<{ Params: { id: string } }>('/api/play/jobs/:id/events', async (req, reply) => {
    const job = play.jobs.get(req.params.id);
    if (!job) throw new HttpError(404, `no generation ${JSON.stringify(req.params.id.slice(0, 40))}`);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    const send = (e: PlayEvent) => res.write(`event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
    for (const e of job.events) send(e);
    if (job.finished) return res.end();
    const listener = (e: PlayEvent) => {
      send(e);
      if (e.type === 'done' || e.type === 'error') {
        job.listeners.delete(listener);
        res.end();
      }
    };
    job.listeners.add(listener);
    req.raw.on('close', () => job.listeners.delete(listener));
  });

  app.post<{ Body: { job: string; checkpoint: number; image: number; vote: 'up' | 'down' } }>(
    '/api/play/feedback',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['job', 'checkpoint', 'image', 'vote'],
          properties: {
            job: { type: 'string', maxLength: 40 },
            checkpoint: { type: 'integer', minimum: 0, maximum: 1 },
            image: { type: 'integer', minimum: 0, maximum: 3 },
            vote: { enum: ['up', 'down'] },
          },
        },
      },
    },
    async (req) => wrap(() => play.feedback(req.body.job, req.body.checkpoint, req.body.image, req.body.vote)),
  );
}
