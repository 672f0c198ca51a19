// Run as a child process by the build (`node check-build.js DIR`): loads the build in DIR, runs a matmul on the
// 'tensorflow' backend, checks it against the cpu backend, and prints one JSON line: TensorFlow's version and
// the devices it made. TensorFlow logs the devices it creates ("Created device ...GPU:0 ...") at INFO level on
// stderr; the parent runs this with TF_CPP_MIN_LOG_LEVEL=0 and reads them from there.
import * as tf from '@tensorflow/tfjs';
import { registerTensorflowBackend } from './load.ts';

const dir = process.argv[2];
registerTensorflowBackend(dir);
if (!(await tf.setBackend('tensorflow'))) throw new Error("the 'tensorflow' backend did not initialise");
const backend = tf.backend() as unknown as { binding: { TF_Version: string } };
const a = [
  [1, 2, 3],
  [4, 5, 6],
];
const b = [
  [1, 0],
  [0, 1],
  [2, -1],
];
const got = Array.from(await tf.matMul(tf.tensor2d(a), tf.tensor2d(b)).data());
const want = [7, -1, 16, -1];
if (got.some((v, i) => Math.abs(v - want[i]) > 1e-6))
  throw new Error(`matMul on the native build gave ${got}, expected ${want}`);
process.stdout.write(JSON.stringify({ tensorflow: backend.binding.TF_Version }) + '\n');
