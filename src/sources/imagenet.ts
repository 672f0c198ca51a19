/**
 * An ImageNet-style folder: `<root>/train/<wnid>/*.JPEG` or `<root>/<wnid>/*.JPEG` (also .jpg/.jpeg/.png,
 * any case). Class index = position of the wnid in the sorted list of class folders (torchvision
 * ImageFolder order, n01440764 "tench" = 0 for ImageNet-1k). Rows are ordered by wnid, then file name.
 * Captions come from `LOC_synset_mapping.txt` ("<wnid> <name>, <name>...") in the root or its parent.
 * open() only counts images per class; rows() lists the class folders it needs again.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Dirent } from 'node:fs';
import type { Source, SourceRecord } from './record.ts';
import { checkRange, fsProblem, mapLimit } from './util.ts';

const IMAGE_EXT = /\.(jpe?g|png)$/i;
const MAPPING_FILE = 'LOC_synset_mapping.txt';

interface ClassInfo {
  wnid: string;
  dir: string;
  count: number;
  /** First global row of this class. */
  offset: number;
  caption: string | null;
}

const byCodeUnits = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

async function isDirectory(path: string, entry?: Dirent): Promise<boolean> {
  if (entry && !entry.isSymbolicLink()) return entry.isDirectory();
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

export class ImageNetSource implements Source {
  readonly files: string[];
  private classes?: ClassInfo[];

  constructor(readonly root: string) {
    this.files = [root];
  }

  async open(): Promise<{ totalRows: number }> {
    const { root } = this;
    let rootInfo;
    try {
      rootInfo = await stat(root);
    } catch (err) {
      throw new Error(`${root}: ${fsProblem(err)}`);
    }
    if (!rootInfo.isDirectory()) throw new Error(`${root}: not a directory (format imagenet expects a folder)`);
    const trainDir = join(root, 'train');
    const classRoot = (await isDirectory(trainDir)) ? trainDir : root;
    const entries = await readdir(classRoot, { withFileTypes: true });
    const wnids: string[] = [];
    for (const e of entries) {
      if (!e.name.startsWith('.') && (await isDirectory(join(classRoot, e.name), e))) wnids.push(e.name);
    }
    wnids.sort(byCodeUnits);
    if (wnids.length === 0) {
      throw new Error(
        `${root}: no class folders found (expected ${root}/train/<wnid>/*.JPEG or ${root}/<wnid>/*.JPEG)`,
      );
    }
    const names = await readSynsetMapping(root);
    const counts = await mapLimit(wnids, 8, async (wnid) => (await listImages(join(classRoot, wnid))).length);
    let offset = 0;
    this.classes = wnids.map((wnid, i) => {
      const info = { wnid, dir: join(classRoot, wnid), count: counts[i], offset, caption: names.get(wnid) ?? null };
      offset += counts[i];
      return info;
    });
    if (offset === 0)
      throw new Error(`${root}: ${wnids.length} class folders but no .JPEG/.jpg/.jpeg/.png images in them`);
    return { totalRows: offset };
  }

  /** Rows [start, end); `end` beyond the last image is clamped. */
  async *rows(start: number, end: number): AsyncGenerator<SourceRecord> {
    checkRange('rows()', start, end);
    if (!this.classes) await this.open();
    const classes = this.classes!;
    for (let cls = 0; cls < classes.length; cls++) {
      const c = classes[cls];
      const from = Math.max(start, c.offset);
      const to = Math.min(end, c.offset + c.count);
      if (from >= to) continue;
      const images = await listImages(c.dir);
      if (images.length !== c.count) {
        throw new Error(`${c.dir}: had ${c.count} images when opened, now ${images.length} (folder changed?)`);
      }
      for (let row = from; row < to; row++) {
        yield {
          row,
          file: this.root,
          fileRow: row,
          url: '',
          caption: c.caption,
          localPath: join(c.dir, images[row - c.offset]),
          cls,
          meta: { wnid: c.wnid },
        };
      }
    }
  }
}

/** Image file names in a class folder, sorted. */
async function listImages(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const names: string[] = [];
  for (const e of entries) {
    if (!IMAGE_EXT.test(e.name) || e.name.startsWith('.')) continue;
    if (
      e.isFile() ||
      (e.isSymbolicLink() &&
        (await stat(join(dir, e.name)).then(
          (s) => s.isFile(),
          () => false,
        )))
    ) {
      names.push(e.name);
    }
  }
  return names.sort(byCodeUnits);
}

/** wnid -> first class name from LOC_synset_mapping.txt in `root` or its parent; empty when absent. */
async function readSynsetMapping(root: string): Promise<Map<string, string>> {
  const names = new Map<string, string>();
  for (const dir of [root, dirname(root)]) {
    let text: string;
    try {
      text = await readFile(join(dir, MAPPING_FILE), 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split(/\r?\n/)) {
      const m = /^(\S+)\s+(.+)$/.exec(line.trim());
      if (m) names.set(m[1], m[2].split(',')[0].trim());
    }
    break;
  }
  return names;
}
