// Where a native build takes TensorFlow from: a wheel file, the TensorFlow installed in a Python, or a folder
// pip installed into. Each gives the folder holding libtensorflow_cc.so.2 (TensorFlow's C API; it does not link
// libpython, so the wheel's Python version does not matter to it), the C headers, and what kind of build it is.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

/** tfjs-node 4.22's binding was written against TensorFlow 2.9's C API. */
export const MIN_TENSORFLOW = '2.9';
export const C_LIBRARY = 'libtensorflow_cc.so.2';
export const FRAMEWORK_LIBRARY = 'libtensorflow_framework.so.2';
/** The C headers the binding includes (found with `g++ -MM`), relative to the wheel's tensorflow/include/. */
export const HEADER_DIRS = ['tensorflow/c', 'tensorflow/core/platform', 'tsl', 'xla/tsl'];

/** The wheel platform tag this process can load, e.g. linux x86_64. */
function hostPlatform(): { os: string; arch: string } {
  const arch = ({ x64: 'x86_64', arm64: 'aarch64' } as Record<string, string>)[process.arch] ?? process.arch;
  return { os: process.platform, arch };
}

function versionAtLeast(version: string, min: string): boolean {
  const a = version.split(/[.+-]/).map((s) => parseInt(s, 10));
  const b = min.split('.').map(Number);
  for (let i = 0; i < b.length; i++) {
    const x = Number.isNaN(a[i]) || a[i] === undefined ? 0 : a[i];
    if (x !== b[i]) return x > b[i];
  }
  return true;
}

export function checkVersion(version: string, where: string): void {
  if (!versionAtLeast(version, MIN_TENSORFLOW)) {
    throw new Error(
      `${where}: TensorFlow ${version} is too old: the binding needs the C API of TensorFlow ${MIN_TENSORFLOW} or newer (2.21.0 is tested)`,
    );
  }
}

export interface WheelName {
  distribution: string;
  version: string;
  python: string;
  abi: string;
  platform: string;
}

/**
 * Checks a wheel's file name (PEP 427: dist-version[-build]-python-abi-platform.whl) before anything is read:
 * a TensorFlow distribution, this OS and CPU architecture, a native (not pure-Python) wheel, a new enough version.
 */
export function checkWheelName(file: string): WheelName {
  const base = path.basename(file);
  const parts = base.replace(/\.whl$/, '').split('-');
  if (!base.endsWith('.whl') || (parts.length !== 5 && parts.length !== 6)) {
    throw new Error(`${file}: not a wheel file name (expected NAME-VERSION-PYTHON-ABI-PLATFORM.whl)`);
  }
  const [distribution, version] = parts;
  const [python, abi, platform] = parts.slice(-3);
  if (!/^(tensorflow|tf_nightly|intel_tensorflow)/i.test(distribution)) {
    throw new Error(
      `${file}: a wheel of '${distribution}', not of TensorFlow (tensorflow, tensorflow_cpu, tf_nightly ...)`,
    );
  }
  if (abi === 'none' || platform === 'any') {
    throw new Error(
      `${file}: a pure-Python wheel (${python}-${abi}-${platform}) has no TensorFlow library; use a platform wheel such as tensorflow_cpu-2.21.0-cp311-cp311-manylinux_2_27_x86_64.whl`,
    );
  }
  const host = hostPlatform();
  if (!platform.includes(host.os) || !platform.endsWith(host.arch)) {
    throw new Error(
      `${file}: a wheel for ${platform}, but this machine is ${host.os} ${host.arch}: download the ${host.os} ${host.arch} wheel (pip download --no-deps 'tensorflow-cpu==2.21.0')`,
    );
  }
  checkVersion(version, file);
  return { distribution, version, python, abi, platform };
}

/** Whether TensorFlow's build_info.py (present in every wheel since 2.3) says CUDA. */
export function isCudaBuildInfo(text: string): boolean {
  return /'is_cuda_build',\s*True/.test(text);
}

/** What a folder `.../site-packages/tensorflow` holds, checked. */
export interface InstalledTensorflow {
  /** The folder with libtensorflow_cc.so.2 (site-packages/tensorflow). */
  libDir: string;
  includeDir: string;
  distribution: string;
  version: string;
  cuda: boolean;
  /** site-packages/nvidia/<name>/lib folders of the CUDA runtime wheels (tensorflow[and-cuda]). */
  nvidiaLibDirs: string[];
}

export function inspectInstalled(tfDir: string, where: string): InstalledTensorflow {
  const site = path.dirname(tfDir);
  const lib = path.join(tfDir, C_LIBRARY);
  const distInfo = readdirSync(site).filter((d) =>
    /^(tensorflow|tf_nightly|intel_tensorflow)[^-]*-[^-]+\.dist-info$/i.test(d),
  );
  const [distribution = 'tensorflow', version = ''] = (distInfo[0] ?? '').replace(/\.dist-info$/, '').split('-');
  if (!existsSync(lib)) {
    throw new Error(
      `${where}: ${tfDir} has no ${C_LIBRARY}${version ? ` (found ${distribution} ${version})` : ''}: ` +
        `TensorFlow's pip wheels ship it on Linux since 2.x; install tensorflow-cpu or tensorflow 2.21`,
    );
  }
  if (!existsSync(path.join(tfDir, FRAMEWORK_LIBRARY)))
    throw new Error(`${where}: ${tfDir} has ${C_LIBRARY} but no ${FRAMEWORK_LIBRARY}`);
  const includeDir = path.join(tfDir, 'include');
  if (!existsSync(path.join(includeDir, 'tensorflow', 'c', 'c_api.h')))
    throw new Error(`${where}: ${includeDir} has no tensorflow/c/c_api.h (the C headers)`);
  if (version) checkVersion(version, where);
  const buildInfo = path.join(tfDir, 'python', 'platform', 'build_info.py');
  const cuda = existsSync(buildInfo) && isCudaBuildInfo(readFileSync(buildInfo, 'utf8'));
  const nvidia = path.join(site, 'nvidia');
  const nvidiaLibDirs = existsSync(nvidia)
    ? readdirSync(nvidia)
        .map((d) => path.join(nvidia, d, 'lib'))
        .filter((d) => existsSync(d) && statSync(d).isDirectory())
        .sort()
    : [];
  return { libDir: tfDir, includeDir, distribution, version: version || 'unknown', cuda, nvidiaLibDirs };
}

/**
 * The TensorFlow package folder of a Python, found without importing TensorFlow (slow, and noisy): the error
 * names the Python and its version when it has none.
 */
export function findInPython(python: string): string {
  const script =
    'import importlib.util, json, sys\n' +
    "s = importlib.util.find_spec('tensorflow')\n" +
    "print(json.dumps({'python': sys.version.split()[0], 'dir': list(s.submodule_search_locations)[0] if s and s.submodule_search_locations else None}))";
  let out: string;
  try {
    out = execFileSync(python, ['-c', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { code?: string; stderr?: string; message: string };
    throw new Error(
      `--python ${python}: ${e.code === 'ENOENT' ? 'no such program' : (e.stderr || e.message).trim().split('\n').pop()}`,
    );
  }
  const r = JSON.parse(out.trim().split('\n').pop()!) as { python: string; dir: string | null };
  if (!r.dir) {
    throw new Error(
      `--python ${python}: Python ${r.python} has no 'tensorflow' package (${python} -m pip install 'tensorflow-cpu==2.21.0', or 'tensorflow[and-cuda]==2.21.0' on a CUDA 12 machine)`,
    );
  }
  return r.dir;
}

/** Lists a wheel's members with `unzip -Z1` (a wheel is a zip file). */
export function wheelMembers(file: string): string[] {
  try {
    return execFileSync('unzip', ['-Z1', file], { encoding: 'utf8', maxBuffer: 64 << 20 })
      .split('\n')
      .filter(Boolean);
  } catch (err) {
    const e = err as { code?: string; stderr?: string; message: string };
    if (e.code === 'ENOENT') throw new Error('reading a wheel needs the unzip program (apt-get install unzip)');
    throw new Error(`${file}: not a readable zip file (${(e.stderr || e.message).trim().split('\n')[0]})`);
  }
}

/** Extracts the libraries, the headers and build_info.py of a wheel into `dest` (dest/tensorflow/...). */
export function extractWheel(file: string, dest: string): void {
  const members = wheelMembers(file);
  for (const lib of [C_LIBRARY, FRAMEWORK_LIBRARY]) {
    if (!members.includes(`tensorflow/${lib}`)) {
      const libs = members.filter((m) => /^tensorflow\/lib[^/]*\.so/.test(m));
      throw new Error(
        `${file}: no tensorflow/${lib} in the wheel (TensorFlow libraries found: ${libs.join(', ') || 'none'})`,
      );
    }
  }
  const patterns = [
    `tensorflow/${C_LIBRARY}`,
    `tensorflow/${FRAMEWORK_LIBRARY}`,
    'tensorflow/python/platform/build_info.py',
    ...HEADER_DIRS.map((d) => `tensorflow/include/${d}/*`),
    '*.dist-info/METADATA',
  ];
  try {
    execFileSync('unzip', ['-q', '-o', file, ...patterns, '-d', dest], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    // Exit 11: a pattern matched nothing (a header folder an older TensorFlow lacks); inspectInstalled checks
    // what the build needs.
    if ((err as { status?: number }).status !== 11) throw err;
  }
}
