// Crash-safe checkpoint directories (`<run>/checkpoints/`): written under a temporary name, every file hashed
// into trainer_state.json and fsynced, then renamed into place; `latest` names the newest; old ones are rotated.
// Both training stages save here, and every reader of a run's newest checkpoint (`--resume latest`, the sampler
// given a run folder) takes it through `resolve('latest')`, which verifies it.
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { fsyncDir, writeFileAtomic } from '../util/atomic.ts';
import { checkCheckpointFiles, sha256File, type FileRecord } from './checkpoint-files.ts';
import { CHECKPOINT_FILES, LATEST, parseStepName, stepName } from './names.ts';

export interface CheckpointInfo {
  step: number;
  dir: string;
}
export type CheckpointState = Record<string, unknown> & { step: number };

const TRAINER_STATE = CHECKPOINT_FILES.trainerState;
const TMP_RE = /^\.tmp-step-\d+-(\d+)$/;

/** A checkpoint folder's name: `step-XXXXXXXX`. */
export const checkpointDirName = stepName;

/** Every regular file under dir, as '/'-separated relative paths, plus the subdirectories (for fsync). */
async function walk(dir: string, rel = ''): Promise<{ files: string[]; dirs: string[] }> {
  const out = { files: [] as string[], dirs: [] as string[] };
  for (const e of await readdir(path.join(dir, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) {
      out.dirs.push(r);
      const sub = await walk(dir, r);
      out.files.push(...sub.files);
      out.dirs.push(...sub.dirs);
    } else if (e.isFile()) out.files.push(r);
    else throw new Error(`checkpoint: ${path.join(dir, r)} is neither a file nor a directory`);
  }
  return out;
}

async function fsyncFile(file: string): Promise<void> {
  const fh = await open(file, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class CheckpointStore {
  readonly root: string;
  private readonly keepLast: number;

  /** `keepLast`: checkpoints kept after each save (default all: a store that only reads). */
  constructor(root: string, opts: { keepLast: number } = { keepLast: Number.MAX_SAFE_INTEGER }) {
    if (!Number.isInteger(opts.keepLast) || opts.keepLast < 1)
      throw new Error(`CheckpointStore: keepLast must be an integer >= 1, got ${opts.keepLast}`);
    this.root = path.resolve(root);
    this.keepLast = opts.keepLast;
  }

  /**
   * Writes the checkpoint for `step` (see the module comment). `state` keys `step` and `files` are set here.
   * Saving a step that already exists replaces it. Returns the final directory.
   */
  async save(step: number, write: (dir: string) => Promise<void>, state: Record<string, unknown>): Promise<string> {
    if (!Number.isInteger(step) || step < 0)
      throw new Error(`CheckpointStore.save: step must be an integer >= 0, got ${step}`);
    await mkdir(this.root, { recursive: true });
    await this.removeStaleTmp();
    const name = checkpointDirName(step);
    const tmp = path.join(this.root, `.tmp-${name}-${process.pid}`);
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp);
    try {
      await write(tmp);
      const { files, dirs } = await walk(tmp);
      const records: Record<string, FileRecord> = {};
      for (const rel of files.filter((f) => f !== TRAINER_STATE).sort()) {
        const abs = path.join(tmp, rel);
        await fsyncFile(abs);
        records[rel] = { bytes: (await stat(abs)).size, sha256: await sha256File(abs) };
      }
      const fh = await open(path.join(tmp, TRAINER_STATE), 'w');
      try {
        await fh.writeFile(JSON.stringify({ ...state, step, files: records }, null, 2) + '\n');
        await fh.sync();
      } finally {
        await fh.close();
      }
      for (const d of dirs) await fsyncDir(path.join(tmp, d));
      await fsyncDir(tmp);
    } catch (e) {
      await rm(tmp, { recursive: true, force: true });
      throw e;
    }
    const final = path.join(this.root, name);
    const replaced = path.join(this.root, `.tmp-replaced-${name}-${process.pid}`);
    const exists = await stat(final).then(
      () => true,
      () => false,
    );
    if (exists) await rename(final, replaced);
    await rename(tmp, final);
    await fsyncDir(this.root);
    if (exists) await rm(replaced, { recursive: true, force: true });
    await writeFileAtomic(path.join(this.root, LATEST), name + '\n');
    await this.rotate();
    return final;
  }

  /** Complete checkpoints (with trainer_state.json), ascending step. */
  async list(): Promise<CheckpointInfo[]> {
    let entries: string[];
    try {
      entries = await readdir(this.root);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const out: CheckpointInfo[] = [];
    for (const e of entries) {
      const step = parseStepName(e);
      if (step === null) continue;
      const dir = path.join(this.root, e);
      if (
        await stat(path.join(dir, TRAINER_STATE)).then(
          (s) => s.isFile(),
          () => false,
        )
      )
        out.push({ step, dir });
    }
    return out.sort((a, b) => a.step - b.step);
  }

  /** Checks every file's size and sha256 against trainer_state.json; null if good, else what is wrong (the loaders' one check). */
  async verify(dir: string): Promise<string | null> {
    return checkCheckpointFiles(dir);
  }

  /**
   * 'latest': the checkpoint the `latest` file names, else the newest, that verifies (corrupt ones are reported
   * through warn and skipped; throws when checkpoints exist but none verifies). Otherwise a directory (or a name under root such as
   * 'step-00000100') that must verify, else throws. null when there is no checkpoint at all.
   */
  async resolve(spec: string, warn: (msg: string) => void): Promise<{ dir: string; state: CheckpointState } | null> {
    if (spec === LATEST) {
      const all = (await this.list()).reverse();
      if (all.length === 0) return null;
      const named = await this.latestNamed();
      const order = [...all.filter((c) => c.dir === named), ...all.filter((c) => c.dir !== named)];
      const bad: string[] = [];
      for (const c of order) {
        const problem = await this.verify(c.dir);
        if (problem === null) return { dir: c.dir, state: await this.readState(c.dir) };
        warn(`checkpoint ${c.dir} is corrupt, skipping it: ${problem}`);
        bad.push(`${path.basename(c.dir)}: ${problem}`);
      }
      throw new Error(`no usable checkpoint under ${this.root}: all ${bad.length} are corrupt (${bad.join('; ')})`);
    }
    let dir = path.resolve(spec);
    if (
      !(await stat(dir).then(
        (s) => s.isDirectory(),
        () => false,
      ))
    ) {
      const under = path.join(this.root, spec);
      if (
        !path.isAbsolute(spec) &&
        (await stat(under).then(
          (s) => s.isDirectory(),
          () => false,
        ))
      )
        dir = under;
      else throw new Error(`checkpoint ${spec}: no such directory`);
    }
    const problem = await this.verify(dir);
    if (problem !== null) throw new Error(`checkpoint ${dir} is corrupt: ${problem}`);
    return { dir, state: await this.readState(dir) };
  }

  /** The folder the `latest` file names (null when absent or not a step folder name). */
  private async latestNamed(): Promise<string | null> {
    const name = (await readFile(path.join(this.root, LATEST), 'utf8').catch(() => '')).trim();
    return parseStepName(name) === null ? null : path.join(this.root, name);
  }

  private async readState(dir: string): Promise<CheckpointState> {
    const file = path.join(dir, TRAINER_STATE);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      throw new Error(`${file}: missing`);
    }
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${file}: not a JSON object`);
    const st = v as Record<string, unknown>;
    if (!Number.isInteger(st.step) || (st.step as number) < 0)
      throw new Error(`${file}: 'step' is not an integer >= 0`);
    return st as CheckpointState;
  }

  /** A tmp dir left by a crashed save (its process gone, or ours from an earlier failed attempt). */
  private async removeStaleTmp(): Promise<void> {
    for (const e of await readdir(this.root)) {
      const m = TMP_RE.exec(e) ?? /^\.tmp-replaced-step-\d+-(\d+)$/.exec(e);
      if (!m) continue;
      const pid = Number(m[1]);
      if (pid === process.pid || !pidAlive(pid)) await rm(path.join(this.root, e), { recursive: true, force: true });
    }
  }

  private async rotate(): Promise<void> {
    const all = await this.list();
    for (const c of all.slice(0, Math.max(0, all.length - this.keepLast)))
      await rm(c.dir, { recursive: true, force: true });
  }
}
