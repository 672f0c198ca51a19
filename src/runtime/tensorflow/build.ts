// `npm run build:tensorflow`: compiles @tensorflow/tfjs-node's binding (its npm package's own C++ sources,
// fetched with `npm pack`, its install script never run) with node-gyp against the TensorFlow C API of a pip
// wheel, into the project's build folder (build-dir.ts). The addon's run path names the library folders, so no
// LD_LIBRARY_PATH is needed. Everything happens in a sibling temp folder, checked by loading it in a child
// process, then renamed into place: a failed build leaves the previous one working.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  BUILD_INFO_FILE,
  LIB_DIR,
  PACKAGE_DIR,
  readBuildInfo,
  tensorflowBuildDir,
  type BuildInfo,
} from './build-dir.ts';
import {
  C_LIBRARY,
  FRAMEWORK_LIBRARY,
  checkWheelName,
  extractWheel,
  findInPython,
  inspectInstalled,
  type InstalledTensorflow,
} from './source.ts';

export interface BuildOptions {
  wheel?: string;
  python?: string;
  pip?: string;
  /** Rebuild even when build.json says the same source was built. */
  force?: boolean;
  dir?: string;
  log?: (line: string) => void;
}

/** What identifies a source, so that a rerun with the same one is a no-op. */
function sourceKey(o: BuildOptions): { source: string; key: string } {
  if (o.wheel) {
    const st = statSync(o.wheel);
    return { source: `wheel ${path.resolve(o.wheel)}`, key: `wheel ${path.resolve(o.wheel)} ${st.size} ${st.mtimeMs}` };
  }
  if (o.pip) return { source: `pip ${o.pip}`, key: `pip ${o.pip} ${o.python ?? 'python3'}` };
  const dir = findInPython(o.python!);
  const lib = path.join(dir, C_LIBRARY);
  return { source: `python ${o.python}`, key: `python ${dir} ${existsSync(lib) ? statSync(lib).mtimeMs : 'none'}` };
}

function run(cmd: string, args: string[], cwd: string, what: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 256 << 20 });
  if (r.error || r.status !== 0) {
    const out = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-15).join('\n');
    throw new Error(`${what} failed (${[cmd, ...args].join(' ')}): ${r.error?.message ?? `exit ${r.status}`}\n${out}`);
  }
  return r.stdout;
}

/** npm (the one running this script when started by `npm run`) and its bundled node-gyp. */
function npmTools(): { npm: string[]; nodeGyp: string[] } {
  const cli = process.env.npm_execpath;
  const npm = cli && cli.endsWith('.js') ? [process.execPath, cli] : ['npm'];
  let gyp = process.env.npm_config_node_gyp;
  if (!gyp || !existsSync(gyp)) {
    const npmDir = cli
      ? path.resolve(path.dirname(cli), '..')
      : path.join(run(npm[0], [...npm.slice(1), 'root', '-g'], process.cwd(), 'npm root -g').trim(), 'npm');
    gyp = path.join(npmDir, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  }
  if (!existsSync(gyp))
    throw new Error(`node-gyp was not found (looked at ${gyp}); npm ships it: check your npm installation`);
  return { npm, nodeGyp: [process.execPath, gyp] };
}

/** Fetches `spec` with `npm pack` (the npm cache or registry) and unpacks it into `dest`. */
function unpackNpm(npm: string[], spec: string, tmp: string, dest: string): void {
  const out = run(
    npm[0],
    [...npm.slice(1), 'pack', spec, '--pack-destination', tmp, '--json', '--silent'],
    tmp,
    `npm pack ${spec}`,
  );
  const tarball = path.join(tmp, (JSON.parse(out) as Array<{ filename: string }>)[0].filename);
  mkdirSync(dest, { recursive: true });
  run('tar', ['xzf', tarball, '-C', dest, '--strip-components=1'], tmp, `unpacking ${spec}`);
  rmSync(tarball);
}

/** node-gyp's input: tfjs-node's two binding sources, linked against the wheel's libraries by file name. */
function bindingGyp(tf: InstalledTensorflow, runPath: string[]): string {
  const target = {
    target_name: 'tfjs_binding',
    sources: ['binding/tfjs_backend.cc', 'binding/tfjs_binding.cc'],
    include_dirs: [tf.includeDir],
    defines: ['NAPI_VERSION=8'],
    libraries: [
      `-L${tf.libDir}`,
      `-l:${C_LIBRARY}`,
      `-l:${FRAMEWORK_LIBRARY}`,
      // DT_RPATH (not RUNPATH): also searched for the libraries TensorFlow itself loads (CUDA's, on a GPU build).
      '-Wl,--disable-new-dtags',
      ...runPath.map((p) => `-Wl,-rpath,${p}`),
    ],
  };
  return JSON.stringify({ targets: [target] }, null, 2);
}

/** Node's headers for node-gyp: the ones installed with node when present (nothing downloaded). */
function nodeDirFlag(): string[] {
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  return existsSync(path.join(prefix, 'include', 'node', 'common.gypi')) ? [`--nodedir=${prefix}`] : [];
}

/** TensorFlow's version and devices, from loading the build in `dir` in a child process. */
function checkBuild(dir: string): { tensorflow: string; devices: string[]; notes: string[] } {
  const self = fileURLToPath(import.meta.url);
  const script = path.join(path.dirname(self), `check-build${path.extname(self)}`);
  // From source (tests, tsx), the child needs tsx too.
  const tsx = script.endsWith('.ts') && !process.execArgv.some((a) => a.includes('tsx')) ? ['--import', 'tsx'] : [];
  const r = spawnSync(process.execPath, [...process.execArgv, ...tsx, script, dir], {
    encoding: 'utf8',
    env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '0', MUSE_TENSORFLOW_BUILD: dir },
  });
  if (r.status !== 0) {
    throw new Error(
      `the new build did not pass its check run (exit ${r.status}):\n${`${r.stderr}`.trim().split('\n').slice(-12).join('\n')}`,
    );
  }
  const { tensorflow } = JSON.parse(r.stdout.trim().split('\n').pop()!) as { tensorflow: string };
  const lines = r.stderr.split('\n');
  const devices = [
    '/device:CPU:0',
    ...lines.flatMap(
      (l) =>
        l
          .match(/Created device (\S+)(.*)$/)
          ?.slice(1, 3)
          .join('') ?? [],
    ),
  ];
  const notes = lines
    .filter((l) => /cuda|GPU librar|gpu device|driver/i.test(l) && !/Created device/.test(l))
    .map((l) => l.replace(/^.*?\] /, ''));
  return { tensorflow, devices, notes };
}

/** Path `p` as the addon (in tfjs-node/build/Release/) finds it once the build folder has its final name. */
function runPathEntry(p: string, tmp: string): string {
  const addonDir = path.join(tmp, PACKAGE_DIR, 'build', 'Release');
  return p.startsWith(tmp + path.sep) ? `\\$$ORIGIN/${path.relative(addonDir, p)}` : p;
}

export async function buildTensorflow(o: BuildOptions): Promise<BuildInfo> {
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const given = [o.wheel && '--wheel', o.pip && '--pip', o.python && !o.pip && '--python'].filter(Boolean);
  if (given.length !== 1)
    throw new Error(`give one of --wheel FILE.whl, --python PATH, --pip SPEC (got ${given.join(', ') || 'none'})`);
  if (o.wheel) {
    if (!existsSync(o.wheel)) throw new Error(`--wheel ${o.wheel}: no such file`);
    checkWheelName(o.wheel);
  }
  const dir = path.resolve(o.dir ?? tensorflowBuildDir());
  const { source, key } = sourceKey(o);
  const previous = readBuildInfo(dir).info as (BuildInfo & { sourceKey?: string }) | undefined;
  if (!o.force && previous?.sourceKey === key && existsSync(path.join(dir, PACKAGE_DIR))) {
    log(
      `already built from ${source}: TensorFlow ${previous.tensorflow} (${previous.cuda ? 'CUDA' : 'CPU'}) in ${dir} (--force rebuilds)`,
    );
    return previous;
  }

  const tmp = `${dir}.build-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    let tf: InstalledTensorflow;
    if (o.wheel) {
      log(`extracting the C API from ${o.wheel} ...`);
      extractWheel(o.wheel, path.join(tmp, 'wheel'));
      renameSync(path.join(tmp, 'wheel'), path.join(tmp, LIB_DIR));
      tf = inspectInstalled(path.join(tmp, LIB_DIR, 'tensorflow'), `--wheel ${o.wheel}`);
    } else if (o.pip) {
      // No dependencies unless extras are asked for: tensorflow[and-cuda] brings the nvidia-*-cu12 runtime.
      const python = o.python ?? 'python3';
      const deps = o.pip.includes('[') ? [] : ['--no-deps'];
      log(`pip installing ${o.pip} into the build folder ...`);
      run(
        python,
        ['-m', 'pip', 'install', '--quiet', '--target', path.join(tmp, LIB_DIR), ...deps, o.pip],
        tmp,
        `pip install ${o.pip}`,
      );
      tf = inspectInstalled(path.join(tmp, LIB_DIR, 'tensorflow'), `--pip ${o.pip}`);
    } else {
      tf = inspectInstalled(findInPython(o.python!), `--python ${o.python}`);
    }
    log(`TensorFlow ${tf.version} (${tf.distribution}, ${tf.cuda ? 'CUDA build' : 'CPU build'}) in ${tf.libDir}`);

    const { npm, nodeGyp } = npmTools();
    const require = createRequire(import.meta.url);
    const tfjsVersion = (require('@tensorflow/tfjs/package.json') as { version: string }).version;
    const pkgDir = path.join(tmp, PACKAGE_DIR);
    log(`fetching @tensorflow/tfjs-node@${tfjsVersion} with npm pack (its install script is not run) ...`);
    unpackNpm(npm, `@tensorflow/tfjs-node@${tfjsVersion}`, tmp, pkgDir);
    const pkg = JSON.parse(readFileSync(path.join(pkgDir, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    if (pkg.dependencies['@tensorflow/tfjs'] !== tfjsVersion) {
      throw new Error(
        `@tensorflow/tfjs-node@${tfjsVersion} wants @tensorflow/tfjs ${pkg.dependencies['@tensorflow/tfjs']}, the project has ${tfjsVersion}`,
      );
    }
    // Its kernel code needs google-protobuf (the summary writer's messages); the rest of its dependencies
    // serve its download script. @tensorflow/tfjs(-core) must be the project's own copy (one engine, one kernel
    // registry): linked, so that a build folder outside the project (MUSE_TENSORFLOW_BUILD) finds them too.
    unpackNpm(
      npm,
      `google-protobuf@${pkg.dependencies['google-protobuf']}`,
      tmp,
      path.join(tmp, 'node_modules', 'google-protobuf'),
    );
    for (const name of ['@tensorflow/tfjs', '@tensorflow/tfjs-core']) {
      const target = path.dirname(require.resolve(`${name}/package.json`));
      const link = path.join(tmp, 'node_modules', name);
      mkdirSync(path.dirname(link), { recursive: true });
      // Relative: right after the rename too (same depth), and when the project moves as a whole.
      symlinkSync(path.relative(path.dirname(link), target), link);
    }

    const runPath = [tf.libDir, ...tf.nvidiaLibDirs].map((p) => runPathEntry(p, tmp));
    writeFileSync(path.join(pkgDir, 'binding.gyp'), bindingGyp(tf, runPath));
    log(`compiling the binding with node-gyp (a few minutes) ...`);
    const t0 = Date.now();
    run(nodeGyp[0], [...nodeGyp.slice(1), 'rebuild', ...nodeDirFlag()], pkgDir, 'node-gyp rebuild');
    log(`compiled in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    // Only what loading needs: the object files and the package's own build scripts go.
    rmSync(path.join(pkgDir, 'build', 'Release', 'obj.target'), { recursive: true, force: true });

    const info: BuildInfo & { sourceKey: string } = {
      tensorflow: tf.version,
      cuda: tf.cuda,
      source,
      distribution: tf.distribution,
      libraryDirs: [tf.libDir, ...tf.nvidiaLibDirs].map((p) =>
        p.startsWith(tmp + path.sep) ? path.join(dir, path.relative(tmp, p)) : p,
      ),
      tfjsNode: tfjsVersion,
      devices: [],
      builtAt: new Date().toISOString(),
      sourceKey: key,
    };
    writeFileSync(path.join(tmp, BUILD_INFO_FILE), JSON.stringify(info, null, 2) + '\n');
    const check = checkBuild(tmp);
    info.tensorflow = check.tensorflow;
    info.devices = check.devices;
    writeFileSync(path.join(tmp, BUILD_INFO_FILE), JSON.stringify(info, null, 2) + '\n');

    // Swap: the old build is moved aside first and removed only once the new one is in place.
    const old = `${dir}.old-${process.pid}`;
    if (existsSync(dir)) renameSync(dir, old);
    renameSync(tmp, dir);
    rmSync(old, { recursive: true, force: true });
    log(
      `built ${dir}: TensorFlow ${info.tensorflow}, ${info.cuda ? 'CUDA' : 'CPU'} build; devices: ${info.devices.join(', ')}`,
    );
    for (const note of check.notes) log(`  TensorFlow: ${note}`);
    return info;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
