import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { CheckpointStore } from './checkpoint-store.ts';
import { CHECKPOINT_FILES, LATEST, runPaths } from './names.ts';

const isDir = async (p: string) => (await stat(p).catch(() => undefined))?.isDirectory() ?? false;

/**
 * The MUSE checkpoint folder `p` names: a checkpoint itself (it has sampling.json), or a run folder, whose
 * verified latest checkpoint is taken (the one `--resume latest` takes; a corrupt newer one is reported through
 * `warn` and skipped). `flag` names the input in errors.
 */
export async function findCheckpoint(p: string, warn: (msg: string) => void, flag = '--checkpoint'): Promise<string> {
  const dir = path.resolve(p);
  if (!(await isDir(dir))) throw new Error(`${flag} ${p}: no such directory`);
  if (existsSync(path.join(dir, CHECKPOINT_FILES.sampling))) return dir;
  const ckpts = runPaths(dir).checkpoints;
  if (await isDir(ckpts)) {
    const found = await new CheckpointStore(ckpts).resolve(LATEST, warn);
    if (!found)
      throw new Error(
        `${flag} ${p}: ${ckpts} has no complete checkpoint (a step-XXXXXXXX/ folder with ${CHECKPOINT_FILES.trainerState})`,
      );
    return found.dir;
  }
  throw new Error(
    `${flag} ${p}: neither a checkpoint (no ${CHECKPOINT_FILES.sampling}) nor a run directory (no ${path.basename(ckpts)}/ folder)`,
  );
}
