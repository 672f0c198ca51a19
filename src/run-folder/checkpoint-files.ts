/**
 * The integrity check of a checkpoint folder, the one every loader runs (`--resume`, `muse-sample`, the
 * playground, `muse-eval run`): `trainer_state.json`'s `files` table records each file's size and sha256 when
 * `muse-train` saves it; a file missing, of another size or another hash is named. A hand-assembled checkpoint
 * without `trainer_state.json` (no record to check against) is not checked.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { CHECKPOINT_FILES } from './names.ts';

const TRAINER_STATE = CHECKPOINT_FILES.trainerState;

export interface FileRecord {
  bytes: number;
  sha256: string;
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Every file's size and sha256 against trainer_state.json; null if good, else what is wrong (naming the file). */
export async function checkCheckpointFiles(dir: string): Promise<string | null> {
  const stateFile = path.join(dir, TRAINER_STATE);
  let text: string;
  try {
    text = await readFile(stateFile, 'utf8');
  } catch {
    return `${stateFile}: missing`;
  }
  let state: unknown;
  try {
    state = JSON.parse(text);
  } catch (e) {
    return `${stateFile}: not valid JSON (${(e as Error).message})`;
  }
  const files = (state as { files?: unknown } | null)?.files;
  if (typeof files !== 'object' || files === null) return `${stateFile}: no 'files' table`;
  for (const [rel, rec] of Object.entries(files as Record<string, Partial<FileRecord>>)) {
    const abs = path.resolve(dir, rel);
    if (!abs.startsWith(path.resolve(dir) + path.sep))
      return `${stateFile}: file path ${rel} leaves the checkpoint directory`;
    const st = await stat(abs).catch(() => null);
    if (!st || !st.isFile()) return `${abs}: missing`;
    if (st.size !== rec.bytes) return `${abs}: ${st.size} bytes, ${rec.bytes} expected (truncated or overwritten)`;
    if ((await sha256File(abs)) !== rec.sha256) return `${abs}: sha256 mismatch (contents corrupted)`;
  }
  return null;
}

/** Throws naming the damaged file when a checkpoint saved by muse-train (it has trainer_state.json) fails the check. */
export async function assertCheckpointIntact(dir: string): Promise<void> {
  if (!existsSync(path.join(dir, TRAINER_STATE))) return;
  const problem = await checkCheckpointFiles(dir);
  if (problem !== null) throw new Error(`checkpoint ${dir} is corrupt: ${problem}`);
}
