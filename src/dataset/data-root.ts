/** The data root holds datasets and shared state: `--data-root DIR`, else `MUSE_DATA_ROOT`, else `./datasets`. */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { shardsDir } from './names.ts';

export function resolveDataRoot(flag: string | undefined): string {
  return path.resolve(flag ?? process.env.MUSE_DATA_ROOT ?? 'datasets');
}

/** `<data root>/fid-stats/`: `muse-eval`'s cache of image sets' Inception statistics. */
export function fidStatsCacheDir(dataRoot: string): string {
  return path.join(dataRoot, 'fid-stats');
}

/** The project folder (pipelines/, the bundled sample): `${project}` in pipeline files. */
export const PROJECT_ROOT = path.resolve(import.meta.dirname, '../..');

/** A dataset argument: an existing folder, else a name under the data root. */
export function resolveDatasetDir(arg: string, dataRoot: string): string {
  if (existsSync(shardsDir(arg))) return path.resolve(arg);
  const under = path.join(dataRoot, arg);
  if (existsSync(shardsDir(under))) return under;
  // A path (absolute, or with a folder in it) is a folder only; a bare name may be either.
  if (path.isAbsolute(arg) || arg.includes(path.sep)) {
    const why = existsSync(arg)
      ? 'has no shards/ folder (not a fetched dataset: run muse-data fetch first)'
      : 'no such folder';
    throw new Error(`no dataset '${arg}': ${why}`);
  }
  throw new Error(`no dataset '${arg}': neither ${path.resolve(arg)} nor ${under} has a shards/ folder`);
}
