// Run under mpirun by bench/train-ranks.ts: times the in-place float32 sum all-reduce of the given sizes
// (elements) on this job's ranks; rank 0 prints one JSON line per size (median ms over the repetitions).
import { openCommunicator } from '../src/runtime/mpi.ts';
import { median } from './lib.ts';

const comm = openCommunicator();
const reps = Number(process.argv[2]);
for (const size of process.argv.slice(3).map(Number)) {
  const buf = new Float32Array(size).fill(comm.rank + 1);
  const times: number[] = [];
  for (let r = 0; r <= reps; r++) {
    comm.barrier();
    const t0 = performance.now();
    comm.allreduceSum(buf);
    if (r > 0) times.push(performance.now() - t0); // the first call sets up connections: not counted
  }
  if (buf[0] !== (comm.size * (comm.size + 1)) / 2 * Math.pow(comm.size, reps)) throw new Error(`allreduce-child: wrong sum ${buf[0]}`);
  if (comm.rank === 0) process.stdout.write(JSON.stringify({ size, ms: median(times), reps }) + '\n');
}
comm.finalize();
