/**
 * Child processes and worker threads that run one of our modules: under tsx (tests, `MUSE_FROM_SOURCE=1`) the
 * `.ts` file with tsx's loader; compiled (`npm run build`, the bins) the `.js` file next to the caller in dist/,
 * with no loader, so no child pays tsx's start-up.
 */
import { fork, type ChildProcess, type ForkOptions } from 'node:child_process';

/** True when this code runs from dist/ (compiled JavaScript), false when tsx runs the TypeScript sources. */
export const RUNNING_COMPILED = import.meta.url.endsWith('.js');

/** The URL of a sibling module named by its source name (`./worker.ts`), as it exists in this build. */
export function moduleUrl(sourceUrl: URL): URL {
  return RUNNING_COMPILED ? new URL(sourceUrl.href.replace(/\.ts$/, '.js')) : sourceUrl;
}

/** Forks `sourceUrl` (e.g. `new URL('./worker.ts', import.meta.url)`) as a Node process with an IPC channel. */
export function forkModule(sourceUrl: URL, opts: Omit<ForkOptions, 'execArgv'> = {}): ChildProcess {
  return fork(moduleUrl(sourceUrl), [], { ...opts, execArgv: RUNNING_COMPILED ? [] : ['--import', 'tsx'] });
}
