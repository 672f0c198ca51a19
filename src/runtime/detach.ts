// A tensor with the same values and no link to the gradient tape (PyTorch's `.detach()`), made on the device:
// a new handle on the same buffer. Copying through the host (`tf.tensor(t.dataSync())`) would do the same but
// needs a synchronous read, which the webgpu backend lacks under Node. Unlike models/vqgan/layers.ts'
// stopGradient (a custom op with a zero gradient), nothing on the tape leads back from the result, so the
// tape does not differentiate through what was computed from it (e.g. the VQGAN trainer's GAN head).
import * as tf from '@tensorflow/tfjs';

export function detachFromTape<T extends tf.Tensor>(t: T): T {
  const engine = tf.engine();
  // What a backend's Identity kernel does (share the buffer, count one more reference), minus the tape record.
  // Buffers are immutable in tfjs (Variable.assign swaps its buffer), so sharing is safe.
  engine.backend.incRef(t.dataId);
  return engine.makeTensorFromTensorInfo({ dataId: t.dataId, shape: t.shape, dtype: t.dtype }) as T;
}
