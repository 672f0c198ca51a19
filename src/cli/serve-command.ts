/** `muse-data serve`: the opt-out, explorer and playground pages over a data root (src/server/). */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Argv } from 'yargs';
import { BACKEND_NAMES, type BackendName } from '../runtime/backend.ts';
import { resolveDataRoot } from '../dataset/data-root.ts';
import { UsageError } from './run-cli.ts';

type Args = Record<string, unknown>;

export const serveCommand = (y: Argv) =>
  y
    .option('data-root', {
      type: 'string',
      describe: 'data root holding index.sqlite (default: $MUSE_DATA_ROOT or ./datasets)',
    })
    .option('checkpoint', {
      type: 'string',
      array: true,
      describe: 'playground checkpoint (or run dir); twice for side by side',
    })
    .option('host', { type: 'string', default: '127.0.0.1' })
    .option('port', { type: 'number', default: 8080 })
    .option('admin-token', {
      type: 'string',
      describe: 'bearer token of the admin API (default: $MUSE_ADMIN_TOKEN; none: admin API off)',
    })
    .option('max-upload-mb', { type: 'number', default: 10 })
    .option('max-upload-pixels', { type: 'number', default: 40_000_000 })
    .option('search-rate', { type: 'number', default: 120, describe: 'URL / image searches per minute per client' })
    .option('generate-rate', { type: 'number', default: 10, describe: 'generations per minute per client' })
    .option('feedback', {
      type: 'string',
      describe: 'playground feedback file, JSON lines (default: <data root>/playground-feedback.jsonl)',
    })
    .option('backend', {
      choices: BACKEND_NAMES as unknown as string[],
      default: 'auto',
      describe: 'tfjs backend of the playground',
    });

export async function serveHandler(a: Args): Promise<number> {
  const dataRoot = resolveDataRoot(a['data-root'] as string | undefined);
  // A mistyped --data-root would otherwise be created and served empty.
  if (!existsSync(dataRoot)) {
    const from =
      a['data-root'] !== undefined
        ? '--data-root'
        : process.env.MUSE_DATA_ROOT
          ? '$MUSE_DATA_ROOT'
          : 'the default data root';
    throw new UsageError(
      `${from} ${dataRoot}: no such folder (a typo? serve does not create a data root; muse-data fetch and optout do)`,
    );
  }
  const port = a.port as number;
  if (!(Number.isInteger(port) && port >= 0 && port < 65536))
    throw new UsageError(`--port ${a.port}: expected an integer in 0..65535`);
  for (const k of ['max-upload-mb', 'max-upload-pixels', 'search-rate', 'generate-rate']) {
    if (!(Number(a[k]) > 0)) throw new UsageError(`--${k} ${a[k]}: expected a positive number`);
  }
  const checkpoints = (a.checkpoint as string[] | undefined) ?? [];
  if (checkpoints.length > 2)
    throw new UsageError(`--checkpoint given ${checkpoints.length} times: the playground compares at most two`);
  if (checkpoints.length) {
    const { initBackend } = await import('../runtime/backend.ts');
    await initBackend(a.backend as BackendName);
    const { loadCheckpoint } = await import('../sample/load.ts');
    // Fail at start, not on the first visitor's click: the checkpoints must load.
    for (const c of checkpoints) (await loadCheckpoint(c)).dispose();
  }
  const { buildServer } = await import('../server/app.ts');
  const app = await buildServer({
    dataRoot,
    checkpoints,
    adminToken: (a['admin-token'] as string | undefined) ?? process.env.MUSE_ADMIN_TOKEN,
    maxUploadBytes: Math.round((a['max-upload-mb'] as number) * 1024 * 1024),
    maxUploadPixels: a['max-upload-pixels'] as number,
    searchRateLimit: a['search-rate'] as number,
    generateRateLimit: a['generate-rate'] as number,
    feedbackFile: (a.feedback as string | undefined) ?? path.join(dataRoot, 'playground-feedback.jsonl'),
  });
  const address = await app.listen({ host: a.host as string, port });
  process.stderr.write(
    `muse-data serve: ${address} (data root ${dataRoot}${checkpoints.length ? `, playground: ${checkpoints.join(' | ')}` : ''})\n`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await app.close();
  return 0;
}
