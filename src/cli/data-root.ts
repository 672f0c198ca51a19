/** The data root holds datasets and shared state: `--data-root DIR`, else `MUSE_DATA_ROOT`, else `./datasets`. */
import path from 'node:path';

export function resolveDataRoot(flag: string | undefined): string {
  return path.resolve(flag ?? process.env.MUSE_DATA_ROOT ?? 'datasets');
}

/** The project folder (pipelines/, the bundled sample): `${project}` in pipeline files. */
export const PROJECT_ROOT = path.resolve(import.meta.dirname, '../..');
