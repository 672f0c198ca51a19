/** Where the committed parity fixtures live (`test/fixtures/`, made by the scripts described in their READMEs). */
import path from 'node:path';

const FIXTURES_DIR = path.resolve(import.meta.dirname, '../fixtures');

/** The path of a fixture file or folder, e.g. `fixturePath('open-muse', 'vqgan_config.json')`. */
export function fixturePath(...parts: string[]): string {
  return path.join(FIXTURES_DIR, ...parts);
}
