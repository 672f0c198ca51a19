/**
 * Packs what bench/device/run.sh needs on a bare device machine into one file, .device/muse-device.tar.xz
 * (git-ignored; the device tool carries it with `carry: [".device"]`):
 *   app/main.mjs                 bench/device/main.ts and every JavaScript module it imports, bundled by esbuild
 *   app/node_modules/webgpu/     Dawn's Node binding for linux-x64 (a native file esbuild cannot bundle)
 *   app/node_modules/@tensorflow/tfjs-backend-wasm/  its .wasm files and pthread worker, found at run time
 *   node                         this machine's node binary, stripped (the device image has no Node)
 *   debs/*.deb                   the Vulkan loader and GL dispatch libraries, unpacked there only if missing
 * The device tool moves at most 64 MiB (the working tree included), so the pack is checked against MAX_MIB.
 *
 *   node --import tsx bench/device/pack.ts [--out DIR] [--no-node]
 * --no-node: the bundle and its modules only (what the test runs with the local node).
 */
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const require = createRequire(import.meta.url);
/** The working tree travels too (~30 MiB of test fixtures): what is carried must leave room for it. */
export const MAX_MIB = 33;
export const PACK_NAME = 'muse-device.tar.xz';
/** The Debian packages whose libraries Dawn's Vulkan path needs (NVIDIA's Vulkan ICD is libGLX_nvidia, on glvnd). */
const DEBS = ['libvulkan1', 'libglvnd0', 'libglx0', 'libegl1', 'libgl1', 'libopengl0', 'libgles2'];

/** Bundles bench/device/main.ts into app/main.mjs and copies the two packages that must stay files. */
export async function bundleApp(appDir: string): Promise<void> {
  await build({
    entryPoints: [path.join(ROOT, 'bench', 'device', 'main.ts')],
    outfile: path.join(appDir, 'main.mjs'),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: ['webgpu'],
    // CommonJS packages inside an ES module bundle call require() for Node's built-ins, and emscripten's glue
    // (the wasm backend) reads __dirname.
    banner: {
      js:
        "import { createRequire as __muse_createRequire } from 'node:module'; import { fileURLToPath as __muse_path } from 'node:url'; " +
        'const require = __muse_createRequire(import.meta.url); const __filename = __muse_path(import.meta.url); ' +
        "const __dirname = __muse_path(new URL('.', import.meta.url));",
    },
    logLevel: 'warning',
  });
  const webgpu = path.dirname(require.resolve('webgpu/package.json'));
  const webgpuOut = path.join(appDir, 'node_modules', 'webgpu');
  for (const f of ['package.json', 'index.js', 'dist/linux-x64/dawn.node'])
    cpSync(path.join(webgpu, f), path.join(webgpuOut, f));
  const wasm = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
  const wasmOut = path.join(appDir, 'node_modules', '@tensorflow', 'tfjs-backend-wasm');
  cpSync(path.join(wasm, 'package.json'), path.join(wasmOut, 'package.json'));
  cpSync(path.join(wasm, 'wasm-out'), path.join(wasmOut, 'wasm-out'), { recursive: true });
  // require.resolve of the package (for the .wasm folder) needs its main file; the .wasm files sit beside it.
  const main = (require(path.join(wasm, 'package.json')) as { main: string }).main;
  for (const f of [
    main,
    ...readdirSync(path.join(wasm, 'dist'))
      .filter((n) => n.endsWith('.wasm'))
      .map((n) => `dist/${n}`),
  ]) {
    cpSync(path.join(wasm, f), path.join(wasmOut, f));
  }
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

export async function pack(opts: { out: string; withNode: boolean; log: (m: string) => void }): Promise<string> {
  const stage = mkdtempSync(path.join(os.tmpdir(), 'muse-device-'));
  try {
    opts.log('bundling bench/device/main.ts with esbuild ...');
    await bundleApp(path.join(stage, 'app'));
    if (opts.withNode) {
      opts.log(`copying ${process.execPath} (stripped) ...`);
      try {
        execFileSync('strip', ['-o', path.join(stage, 'node'), process.execPath]);
      } catch {
        cpSync(process.execPath, path.join(stage, 'node'));
      }
      opts.log(`apt-get download ${DEBS.join(' ')} ...`);
      mkdirSync(path.join(stage, 'debs'));
      execFileSync('apt-get', ['download', ...DEBS], {
        cwd: path.join(stage, 'debs'),
        stdio: ['ignore', 'ignore', 'inherit'],
      });
    }
    mkdirSync(opts.out, { recursive: true });
    const file = path.join(opts.out, PACK_NAME);
    opts.log(`compressing into ${file} (xz, about a minute) ...`);
    execFileSync('tar', ['-cf', `${file}.tmp`, '-I', 'xz -T0 -6', '-C', stage, '.']);
    cpSync(`${file}.tmp`, file);
    rmSync(`${file}.tmp`);
    const size = statSync(file).size;
    if (size > MAX_MIB * 2 ** 20)
      throw new Error(
        `${file} is ${mib(size)}: more than the ${MAX_MIB} MiB the device tool can carry beside the working tree`,
      );
    opts.log(`${file}: ${mib(size)}`);
    return file;
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const i = process.argv.indexOf('--out');
  const out = i >= 0 ? path.resolve(process.argv[i + 1]) : path.join(ROOT, '.device');
  if (!existsSync(path.join(ROOT, 'node_modules', 'webgpu')))
    throw new Error('node_modules/webgpu is missing: run npm ci first');
  await pack({ out, withNode: !process.argv.includes('--no-node'), log: (m) => console.log(m) });
}
