// The native TensorFlow build folder (`npm run build:tensorflow` writes it, the 'tensorflow' backend reads it).
// This module owns its names; nothing else spells them. Layout:
//   .native/tensorflow/build.json          what was built from what (BuildInfo), written last
//   .native/tensorflow/tfjs-node/          @tensorflow/tfjs-node's npm package, its addon compiled in build/Release/
//   .native/tensorflow/node_modules/       the package's one runtime dependency the project lacks (google-protobuf)
//   .native/tensorflow/tensorflow/         --wheel, --pip: a site-packages folder; its tensorflow/ holds libtensorflow_cc.so.2
//                                          and the C headers (--python: the libraries stay in that Python)
// Git-ignored; kept out of the npm package. MUSE_TENSORFLOW_BUILD points elsewhere (e.g. a build shared by clones).
import { readFileSync } from 'node:fs';
import path from 'node:path';

/** The project root: this file is src/runtime/tensorflow/ (tsx) or dist/runtime/tensorflow/ (built). */
const ROOT = path.resolve(import.meta.dirname, '../../..');

/** The command that makes a build, named by every "not built" message. */
export const BUILD_COMMAND =
  "npm run build:tensorflow -- --pip 'tensorflow-cpu==2.21.0' (or --wheel FILE.whl, --python PATH)";

export const BUILD_INFO_FILE = 'build.json';
export const PACKAGE_DIR = 'tfjs-node';
export const LIB_DIR = 'tensorflow';
export const ADDON_PATH = path.join(PACKAGE_DIR, 'build', 'Release', 'tfjs_binding.node');

export function tensorflowBuildDir(): string {
  return path.resolve(process.env.MUSE_TENSORFLOW_BUILD || path.join(ROOT, '.native', 'tensorflow'));
}

/** What `build.json` records. */
export interface BuildInfo {
  /** TensorFlow's own version string (TF_Version() of the library). */
  tensorflow: string;
  /** A CUDA build of TensorFlow (the `tensorflow` wheel on Linux) or the CPU-only `tensorflow-cpu`. */
  cuda: boolean;
  /** Where the libraries came from: `wheel FILE`, `python PATH`, `pip SPEC`. */
  source: string;
  /** The Python distribution that held the libraries, e.g. tensorflow-cpu. */
  distribution: string;
  /** The folders compiled into the addon's run path (libtensorflow, and nvidia-*-cu12 runtime libraries). */
  libraryDirs: string[];
  /** The tfjs-node package whose binding sources were compiled. */
  tfjsNode: string;
  /** The devices TensorFlow reported at the build's check run. */
  devices: string[];
  builtAt: string;
}

/** The build's record, or undefined (with why) when there is no usable build. */
export function readBuildInfo(dir = tensorflowBuildDir()): { info?: BuildInfo; missing?: string } {
  let text: string;
  try {
    text = readFileSync(path.join(dir, BUILD_INFO_FILE), 'utf8');
  } catch {
    return { missing: `no native TensorFlow build in ${dir}: run ${BUILD_COMMAND}` };
  }
  try {
    return { info: JSON.parse(text) as BuildInfo };
  } catch (err) {
    return {
      missing: `${path.join(dir, BUILD_INFO_FILE)} is not valid JSON (${(err as Error).message}): rerun ${BUILD_COMMAND}`,
    };
  }
}
