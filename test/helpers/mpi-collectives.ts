// Run by test/runtime/mpi.test.ts under mpirun: each rank exercises the addon's collectives and prints one JSON line.
import { assertAgreement, openCommunicator } from '../../src/runtime/mpi.ts';

const comm = openCommunicator();
const { rank, size } = comm;
// A buffer larger than one eager message: rank r holds r + i / n at element i.
const n = 300_000;
const big = new Float32Array(n);
for (let i = 0; i < n; i++) big[i] = rank + i / n;
comm.allreduceSum(big);
const f64 = Float64Array.of(rank + 0.5, rank * 1e12, -rank);
const min = f64.slice();
const max = f64.slice();
comm.allreduceF64(f64, 'sum');
comm.allreduceF64(min, 'min');
comm.allreduceF64(max, 'max');
assertAgreement(comm, 'a constant', 42);
let disagreement = '';
try {
  assertAgreement(comm, 'the rank', rank);
} catch (err) {
  disagreement = (err as Error).message;
}
comm.barrier();
const sample = [0, 1, n - 1].map((i) => big[i]);
process.stdout.write(
  JSON.stringify({
    rank,
    size,
    localRank: comm.localRank,
    localSize: comm.localSize,
    sample,
    sum: [...f64],
    min: [...min],
    max: [...max],
    disagreement,
  }) + '\n',
);
comm.finalize();
