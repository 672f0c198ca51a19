/** The pages' scripts: a fixed list of files read once at start; no request path reaches the file system. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { HttpError } from './app.ts';

const FILES = ['optout.js', 'play.js'];

export function staticRoutes(app: FastifyInstance): void {
  // The scripts are plain JavaScript kept in src/server/static/ (tsc does not copy them to dist/): this file runs
  // from src/server/ or dist/server/, both two levels below the project root.
  const dir = path.join(import.meta.dirname, '..', '..', 'src', 'server', 'static');
  const files = new Map(FILES.map((f) => [f, readFileSync(path.join(dir, f))]));
  app.get<{ Params: { file: string } }>('/static/:file', async (req, reply) => {
    const body = files.get(req.params.file);
    if (!body) throw new HttpError(404, `no static file ${JSON.stringify(req.params.file)}`);
    return reply.type('text/javascript; charset=utf-8').header('cache-control', 'no-cache').send(body);
  });
}
