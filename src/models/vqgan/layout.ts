// Converting between PyTorch's NCHW and the NHWC layout the VQGAN uses.
import * as tf from '@tensorflow/tfjs';

export const nchwToNhwc = (x: tf.Tensor4D): tf.Tensor4D => tf.transpose(x, [0, 2, 3, 1]);
export const nhwcToNchw = (x: tf.Tensor4D): tf.Tensor4D => tf.transpose(x, [0, 3, 1, 2]);
