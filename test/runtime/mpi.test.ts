// The MPI addon (native/mpi) and src/runtime/mpi.ts: collectives under `mpirun -np 2` on loopback, the launcher
// environment, and the message when a launcher started several ranks but the addon is missing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { assignLocalGpu, launcherSize, openCommunicator } from '../../src/runtime/mpi.ts';
import { mpiSkip, mpirun } from '../helpers/mpi.ts';

const skip = mpiSkip();

test(
  'two ranks: allreduce sums a Float32Array in place; float64 sum / min / max; agreement; local rank',
  { skip },
  async () => {
    const r = await mpirun(2, [path.join(import.meta.dirname, '..', 'helpers', 'mpi-collectives.ts')]);
    assert.equal(r.code, 0, r.stderr);
    const ranks = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .sort((a, b) => a.rank - b.rank);
    assert.deepEqual(
      ranks.map((x) => [x.rank, x.size, x.localRank, x.localSize]),
      [
        [0, 2, 0, 2],
        [1, 2, 1, 2],
      ],
    );
    const n = 300_000;
    for (const x of ranks) {
      // element i: (0 + i/n) + (1 + i/n), as float32
      assert.deepEqual(x.sample, [1, 1 + 2 / n, 1 + (2 * (n - 1)) / n].map(Math.fround));
      assert.deepEqual(x.sum, [2, 1e12, -1]);
      assert.deepEqual(x.min, [0.5, 0, -1]);
      assert.deepEqual(x.max, [1.5, 1e12, 0]); // -0 of rank 0 comes back as 0 through JSON
      assert.match(x.disagreement, /the 2 ranks disagree on the rank .*values range from 0 to 1/);
    }
  },
);

test('the launcher environment: Open MPI, PMI, srun tasks; one process when none', () => {
  assert.deepEqual(launcherSize({}), { size: 1, launcher: '' });
  assert.equal(launcherSize({ OMPI_COMM_WORLD_SIZE: '4' }).size, 4);
  assert.equal(launcherSize({ OMPI_COMM_WORLD_SIZE: '1' }).size, 1);
  assert.equal(launcherSize({ PMI_SIZE: '3' }).size, 3);
  assert.equal(launcherSize({ SLURM_NTASKS: '8', SLURM_PROCID: '2' }).launcher, 'srun (SLURM)');
  // inside an sbatch script but outside srun: not a rank of a job
  assert.equal(launcherSize({ SLURM_NTASKS: '8' }).size, 1);
});

test('several ranks announced but no addon: the error says how to get it', () => {
  assert.throws(
    () => openCommunicator({ OMPI_COMM_WORLD_SIZE: '2' }, '/nonexistent/muse_mpi.node'),
    /mpirun \(Open MPI\) started 2 processes, but muse's MPI addon cannot be loaded .*apt-get install openmpi-bin libopenmpi-dev.*npm run build:mpi/,
  );
});

test('the local rank picks the GPU: CUDA_VISIBLE_DEVICES unset, a list, a single id set per rank, too few GPUs', () => {
  const env: NodeJS.ProcessEnv = {};
  assignLocalGpu({ localRank: 1, localSize: 4 }, env);
  assert.equal(env.CUDA_VISIBLE_DEVICES, '1');
  const listed: NodeJS.ProcessEnv = { CUDA_VISIBLE_DEVICES: '4,5,6,7' };
  assignLocalGpu({ localRank: 2, localSize: 4 }, listed);
  assert.equal(listed.CUDA_VISIBLE_DEVICES, '6');
  const pinned: NodeJS.ProcessEnv = { CUDA_VISIBLE_DEVICES: '3' };
  assignLocalGpu({ localRank: 1, localSize: 2 }, pinned);
  assert.equal(pinned.CUDA_VISIBLE_DEVICES, '3');
  const alone: NodeJS.ProcessEnv = {};
  assignLocalGpu({ localRank: 0, localSize: 1 }, alone);
  assert.equal(alone.CUDA_VISIBLE_DEVICES, undefined);
  assert.throws(
    () => assignLocalGpu({ localRank: 0, localSize: 4 }, { CUDA_VISIBLE_DEVICES: '0,1' }),
    /lists 2 GPUs \(0,1\) for the 4 ranks on this machine/,
  );
});
