/** `npm run build:tensorflow -- --wheel F.whl | --python PATH | --pip SPEC`: the native 'tensorflow' backend. */
import yargs from 'yargs';
import { buildTensorflow } from '../runtime/tensorflow/build.ts';
import { runCli, UsageError, usageFailure } from './run-cli.ts';

export async function main(argv: string[]): Promise<number> {
  const a = await yargs(argv)
    .scriptName('npm run build:tensorflow --')
    .usage(
      '$0 --wheel FILE.whl | --python PATH | --pip SPEC [--force]\n\n' +
        "Compiles tfjs-node's binding against the TensorFlow C API of a pip wheel into .native/tensorflow/ (see docs/backends.md).",
    )
    .option('wheel', {
      type: 'string',
      describe: 'a TensorFlow wheel file (pip download --no-deps tensorflow-cpu==2.21.0)',
    })
    .option('python', {
      type: 'string',
      describe:
        "the TensorFlow installed in this Python (e.g. a venv's bin/python after pip install 'tensorflow[and-cuda]==2.21.0'); with --pip: the pip to use",
    })
    .option('pip', {
      type: 'string',
      describe: "a requirement pip installs into the build folder, e.g. 'tensorflow-cpu==2.21.0'",
    })
    .option('force', {
      type: 'boolean',
      default: false,
      describe: 'rebuild even when the same source is already built',
    })
    .check((x) => {
      const n = [x.wheel, x.pip, x.python && !x.pip].filter(Boolean).length;
      if (n !== 1) throw new UsageError('give one of --wheel FILE.whl, --python PATH, --pip SPEC');
      return true;
    })
    .strict()
    .help()
    .fail(usageFailure('build:tensorflow'))
    .parseAsync();
  await buildTensorflow({ wheel: a.wheel, python: a.python, pip: a.pip, force: a.force });
  return 0;
}

export const cli = (argv?: string[]): Promise<void> => runCli('build:tensorflow', main, argv);
