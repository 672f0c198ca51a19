// Run under mpirun by bench/train-ranks.ts: times the in-place float32 sum all-reduce of the given sizes
// (elements) on this job's ranks, fused (bucket 0) or as consecutive calls on buckets of that many elements (as
// allreduceGrads does); rank 0 prints one JSON line per size (median ms over the repetitions).
import { openCommunicator } from '../src/runtime/mpi.ts';
import { median } from './lib.ts';

const comm = openCommunicator();
const reps = Number(process.argv[2]);
const bucket = Number(process.argv[3]);
const allreduce = (buf: Float32Array) => {
  if (!bucket) return comm.allreduceSum(buf);
  for (let at = 0; at < buf.length; at += bucket)
    comm.allreduceSum(buf.subarray(at, Math.min(buf.length, at + bucket)));
};
for (const size of process.argv.slice(4).map(Number)) {
  const buf = new Float32Array(size).fill(comm.rank + 1);
  const times: number[] = [];
  for (let r = 0; r <= reps; r++) {
    comm.barrier();
    const t0 = performance.now();
    allreduce(buf);
    if (r > 0) times.push(performance.now() - t0); // the first call sets up connections: not counted
  }
  const want = ((comm.size * (comm.size + 1)) / 2) * Math.pow(comm.size, reps);
  if (buf[0] !== want || buf[size - 1] !== want)
    throw new Error(`allreduce-child: wrong sum ${buf[0]}, ${buf[size - 1]}`);
  if (comm.rank === 0) process.stdout.write(JSON.stringify({ size, bucket, ms: median(times), reps }) + '\n');
}
comm.finalize();
