/** `npm run demo [-- --out DIR --backend wasm]`. */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { BACKEND_NAMES, BackendUnavailableError, type BackendName } from '../runtime/backend.ts';
import { runDemo } from './run-demo.ts';

const a = await yargs(hideBin(process.argv))
  .scriptName('npm run demo --')
  .option('out', { type: 'string', default: 'runs/demo', describe: 'output folder (replaced)' })
  .option('backend', { type: 'string', choices: BACKEND_NAMES as string[], default: 'auto' })
  .option('set-vqgan', { type: 'string', array: true, default: [], describe: 'override a tiny-vqgan.yaml key' })
  .option('set-transformer', { type: 'string', array: true, default: [], describe: 'override a tiny.yaml key' })
  .strict()
  .parseAsync();
try {
  await runDemo({
    outDir: a.out,
    backend: a.backend as BackendName,
    vqganSets: (a['set-vqgan'] as string[]).map(String),
    transformerSets: (a['set-transformer'] as string[]).map(String),
  });
} catch (err) {
  process.stderr.write(`demo: ${process.env.MUSE_DEBUG ? (err as Error).stack : (err as Error).message}\n`);
  process.exitCode = err instanceof BackendUnavailableError ? 2 : 1;
}
