/**
 * Imports point down the tree: the folder table of ARCHITECTURE.md (top to bottom) is the order; a file in
 * `src/<folder>/` may import only its own folder and folders below it. The exceptions ARCHITECTURE.md lists are
 * the only ones allowed. Nothing in `src/` imports test or bench code.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '../..');
const rel = (f: string) => path.relative(root, f).split(path.sep).join('/');

/** Folder names in the table's order (top first). */
function layers(): string[] {
  const text = readFileSync(path.join(root, 'ARCHITECTURE.md'), 'utf8');
  return [...text.matchAll(/^\| `src\/([a-z-]+)\/` \|/gm)].map((m) => m[1]);
}

/** The listed exceptions: lines "- `src/a.ts` → `src/b.ts`" of the exceptions section. */
function exceptions(): Set<string> {
  const text = readFileSync(path.join(root, 'ARCHITECTURE.md'), 'utf8');
  const section = text.slice(text.indexOf('### Exceptions still to remove'), text.indexOf('## The dataset folder'));
  return new Set([...section.matchAll(/^- `(src\/[^`]+\.ts)` → `(src\/[^`]+\.ts)`/gm)].map((m) => `${m[1]} -> ${m[2]}`));
}

function walk(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (/\.(ts|mts|mjs|js)$/.test(e.name)) out.push(p);
  }
  return out;
}

interface Import {
  from: string;
  to: string;
  typeOnly: boolean;
}

function imports(): Import[] {
  const out: Import[] = [];
  for (const file of walk(path.join(root, 'src'))) {
    const text = readFileSync(file, 'utf8');
    const re = /(?:^|\n)\s*(import|export)\s+(type\s+)?[^'";]*?from\s+['"](\.{1,2}\/[^'"]+)['"]|import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g;
    for (const m of text.matchAll(re)) {
      const spec = m[3] ?? m[4];
      out.push({ from: rel(file), to: rel(path.resolve(path.dirname(file), spec)), typeOnly: !!m[2] });
    }
  }
  return out;
}

const folderOf = (p: string) => p.split('/')[1];

test('ARCHITECTURE.md lists every src/ folder once', () => {
  const listed = layers();
  const present = readdirSync(path.join(root, 'src'), { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
  assert.deepEqual([...listed].sort(), [...new Set(listed)].sort(), 'a folder is listed twice');
  assert.deepEqual([...listed].sort(), present.sort(), 'ARCHITECTURE.md folder table vs src/');
});

test('imports point down the tree (except the listed exceptions)', () => {
  const order = layers();
  const allowed = exceptions();
  assert.equal(allowed.size, 4, `exceptions parsed from ARCHITECTURE.md: ${[...allowed].join('; ')}`);
  const all = imports();
  assert.ok(all.length > 300, `found ${all.length} imports`);
  const bad: string[] = [];
  for (const i of all) {
    if (!i.to.startsWith('src/')) {
      bad.push(`${i.from} imports ${i.to}, outside src/ (test-only code belongs in test/helpers/)`);
      continue;
    }
    const a = folderOf(i.from);
    const b = folderOf(i.to);
    if (a === b || order.indexOf(b) > order.indexOf(a)) continue;
    if (i.typeOnly && i.to === 'src/pipeline/config-types.ts') continue;
    if (allowed.has(`${i.from} -> ${i.to}`)) continue;
    bad.push(`${i.from} -> ${i.to} (${a}/ is below ${b}/ in ARCHITECTURE.md)`);
  }
  assert.deepEqual(bad, []);
});

test('the two upward imports once named as leaks stay fixed', () => {
  const all = imports();
  assert.ok(!all.some((i) => i.from === 'src/train/run/run-training.ts' && i.to.startsWith('src/cli/')));
  assert.ok(!all.some((i) => i.from === 'src/dataset/rewrite.ts' && i.to.startsWith('src/tokenize/')));
});
