// Shared by the bins: runs a command line module compiled to dist/ (`npm run build`; `npm ci` does it), so no
// process pays tsx's start-up. Falls back to the TypeScript source through tsx when dist/ is missing or older
// than src/ (a checkout being edited, or tests run without a build); MUSE_FROM_SOURCE=1 forces that.
import { readdirSync, statSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));

const mtime = (file) => statSync(file, { throwIfNoEntry: false })?.mtimeMs;

/** dist/ exists and was built after the last change under src/. */
function distIsFresh() {
  const built = mtime(`${root}dist/.tsbuildinfo`);
  if (built === undefined) return false;
  for (const rel of readdirSync(`${root}src`, { recursive: true })) {
    if ((mtime(`${root}src/${rel}`) ?? 0) > built) return false;
  }
  return true;
}

/** Runs `cli()` of the module `entry`, a path under src/ without extension (e.g. 'cli/muse-data'). */
export async function runBin(entry) {
  let file;
  if (process.env.MUSE_FROM_SOURCE !== '1' && distIsFresh()) {
    file = `${root}dist/${entry}.js`;
  } else {
    const { register } = await import('tsx/esm/api');
    register();
    file = `${root}src/${entry}.ts`;
  }
  const { cli } = await import(pathToFileURL(file).href);
  await cli();
}
