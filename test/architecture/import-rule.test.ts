/**
 * Imports point down the tree: the folder table of ARCHITECTURE.md (top to bottom) is the order; a file in
 * `src/<folder>/` may import only its own folder and folders below it. The exceptions ARCHITECTURE.md lists are
 * the only ones allowed. Nothing in `src/` imports test or bench code. The two halves (pipeline, training) do not
 * import each other.
 *
 * Names: each on-disk contract name of ARCHITECTURE.md's names table appears as a string (or regular expression)
 * literal only in its owner module, and in the files its exceptions table lists; elsewhere code imports the owner.
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
const architecture = () => readFileSync(path.join(root, 'ARCHITECTURE.md'), 'utf8');

/** The lines of a section of ARCHITECTURE.md (from its heading to the next heading). */
function section(heading: string): string {
  const text = architecture();
  const start = text.indexOf(heading);
  assert.ok(start >= 0, `ARCHITECTURE.md has no section '${heading}'`);
  const rest = text.slice(start + heading.length);
  const end = rest.search(/\n#{2,3} /);
  return end < 0 ? rest : rest.slice(0, end);
}

function exceptions(): Set<string> {
  const text = architecture();
  const section = text.slice(text.indexOf('### Exceptions still to remove'), text.indexOf('## The dataset folder'));
  return new Set(
    [...section.matchAll(/^- `(src\/[^`]+\.ts)` → `(src\/[^`]+\.ts)`/gm)].map((m) => `${m[1]} -> ${m[2]}`),
  );
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
    const re =
      /(?:^|\n)\s*(import|export)\s+(type\s+)?[^'";]*?from\s+['"](\.{1,2}\/[^'"]+)['"]|import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g;
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
  const present = readdirSync(path.join(root, 'src'), { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name);
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

/** The folders of each half, from ARCHITECTURE.md's lines "**Pipeline half:** `src/a/`, ..." and "**Training half:** ...". */
function halves(): Record<'pipeline' | 'training', string[]> {
  const text = architecture();
  const folders = (name: string) => {
    const line = new RegExp(`^\\*\\*${name} half:\\*\\*(.*)$`, 'm').exec(text);
    assert.ok(line, `ARCHITECTURE.md has no "**${name} half:**" line`);
    return [...line[1].matchAll(/`src\/([a-z-]+)\/`/g)].map((m) => m[1]);
  };
  return { pipeline: folders('Pipeline'), training: folders('Training') };
}

test('the two halves, pipeline and training, do not import each other', () => {
  const h = halves();
  assert.ok(h.pipeline.length >= 5 && h.training.length >= 3, JSON.stringify(h));
  const half = (p: string) =>
    h.pipeline.includes(folderOf(p)) ? 'pipeline' : h.training.includes(folderOf(p)) ? 'training' : null;
  const bad = imports()
    .filter((i) => i.to.startsWith('src/'))
    .filter((i) => half(i.from) && half(i.to) && half(i.from) !== half(i.to))
    .map((i) => `${i.from} (${half(i.from)}) -> ${i.to} (${half(i.to)})`);
  assert.deepEqual(bad, []);
});

/**
 * The string, template and regular-expression literals of a TypeScript source (comments skipped). A template
 * gives its text between the `${...}` parts; a regular expression its source without backslashes.
 */
export function literals(src: string): string[] {
  const out: string[] = [];
  let i = 0;
  // The last significant character, to tell a regular expression from a division.
  let prev = '';
  const code = (stopAtBrace: boolean): void => {
    let depth = 0;
    while (i < src.length) {
      const c = src[i];
      if (c === '/' && src[i + 1] === '/') {
        while (i < src.length && src[i] !== '\n') i++;
      } else if (c === '/' && src[i + 1] === '*') {
        const end = src.indexOf('*/', i + 2);
        i = end < 0 ? src.length : end + 2;
      } else if (c === "'" || c === '"') {
        let j = i + 1;
        let s = '';
        while (j < src.length && src[j] !== c && src[j] !== '\n') {
          if (src[j] === '\\') j++;
          s += src[j] ?? '';
          j++;
        }
        out.push(s);
        i = j + 1;
        prev = 'a';
      } else if (c === '`') {
        i++;
        let s = '';
        while (i < src.length && src[i] !== '`') {
          if (src[i] === '\\') {
            s += src[i + 1] ?? '';
            i += 2;
          } else if (src[i] === '$' && src[i + 1] === '{') {
            out.push(s);
            s = '';
            i += 2;
            code(true);
          } else s += src[i++];
        }
        out.push(s);
        i++;
        prev = 'a';
      } else if (
        c === '/' &&
        (prev === '' ||
          '(,=:[!&|?{};+-*%<>~^'.includes(prev) ||
          /\b(return|typeof|case|in|of)$/.test(src.slice(Math.max(0, i - 8), i).trimEnd()))
      ) {
        let j = i + 1;
        let s = '';
        let inClass = false;
        while (j < src.length && src[j] !== '\n' && (src[j] !== '/' || inClass)) {
          if (src[j] === '\\') {
            s += src[j + 1] ?? '';
            j += 2;
            continue;
          }
          if (src[j] === '[') inClass = true;
          else if (src[j] === ']') inClass = false;
          s += src[j++];
        }
        out.push(s);
        i = j + 1;
        while (/[a-z]/.test(src[i] ?? '')) i++;
        prev = 'a';
      } else {
        if (stopAtBrace) {
          if (c === '{') depth++;
          else if (c === '}') {
            if (depth === 0) {
              i++;
              prev = 'a';
              return;
            }
            depth--;
          }
        }
        if (!/\s/.test(c)) prev = c;
        i++;
      }
    }
  };
  code(false);
  return out;
}

interface NameRule {
  name: string;
  owners: string[];
}

/** ARCHITECTURE.md's names table: rows "| `name` | `src/owner.ts` ... |" (more than one owner: comma-separated). */
function nameRules(): NameRule[] {
  return [...section('### Contract names').matchAll(/^\| `([^`]+)` \| ((?:`src\/[^`]+`(?:, )?)+) \|/gm)].map((m) => ({
    name: m[1],
    owners: [...m[2].matchAll(/`(src\/[^`]+)`/g)].map((o) => o[1]),
  }));
}

/** Its exceptions table: rows "| `name` | `src/file.ts` | why |". */
function nameExceptions(): Set<string> {
  return new Set(
    [...section('### Names spelled outside their owner').matchAll(/^\| `([^`]+)` \| `(src\/[^`]+)` \|/gm)].map(
      (m) => `${m[1]} ${m[2]}`,
    ),
  );
}

/**
 * Does a literal spell `name`? A prefix (`step-`) when the literal starts with it or has it after a '/'; a suffix
 * (`_stats.json`, `.rewrite.json`) anywhere in it but after a space; any other name as the whole literal or a path segment of it.
 * Prose in messages ("no shards/ folder") is not a spelling.
 */
export function spells(literal: string, name: string): boolean {
  const lit = literal.replace(/^\^/, '').replace(/\$$/, '');
  if (name.endsWith('-')) return lit.startsWith(name) || lit.includes(`/${name}`);
  if (name.startsWith('_') || name.startsWith('.'))
    return new RegExp(`(^|[^\\s'"])${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`).test(lit);
  return lit === name || lit.startsWith(`${name}/`) || lit.endsWith(`/${name}`) || lit.includes(`/${name}/`);
}

test('the names rule reads literals and spellings as intended', () => {
  assert.deepEqual(
    literals(
      "const a = 'shards'; // 'not'\nconst b = `${x}/shards/${y}_stats.json`; const r = /^(\\d+)_stats\\.json$/; const d = x / 2 / y;",
    ),
    ['shards', '', '/shards/', '_stats.json', '^(d+)_stats.json$'],
  );
  assert.ok(spells('shards', 'shards') && spells('/shards/', 'shards') && !spells('no shards/ folder', 'shards'));
  assert.ok(spells('^(d+)_stats.json$', '_stats.json') && !spells('delete its _stats.json', '_stats.json'));
  assert.ok(spells('step-', 'step-') && !spells('a step-by-step guide', 'step-'));
});

test('contract names appear as literals only in their owner (and the exceptions ARCHITECTURE.md lists)', () => {
  const rules = nameRules();
  assert.ok(rules.length >= 10, `names parsed from ARCHITECTURE.md: ${rules.map((r) => r.name).join(', ')}`);
  const allowed = nameExceptions();
  const bad: string[] = [];
  const used = new Set<string>();
  for (const file of walk(path.join(root, 'src'))) {
    const f = rel(file);
    // Module specifiers ('../shards/tar-reader.ts') name source files, not data.
    const lits = literals(
      readFileSync(file, 'utf8')
        .replace(/\bfrom\s+(['"])[^'"]*\1/g, "from ''")
        .replace(/\bimport\(\s*(['"])[^'"]*\1\s*\)/g, "import('')"),
    );
    for (const r of rules) {
      if (r.owners.includes(f)) continue;
      const hit = lits.find((l) => spells(l, r.name));
      if (hit === undefined) continue;
      if (allowed.has(`${r.name} ${f}`)) {
        used.add(`${r.name} ${f}`);
        continue;
      }
      bad.push(`${f} spells '${r.name}' (in ${JSON.stringify(hit)}): import it from ${r.owners.join(' or ')}`);
    }
  }
  assert.deepEqual(bad, []);
  assert.deepEqual(
    [...allowed].filter((e) => !used.has(e)),
    [],
    'exceptions no longer needed: remove them from ARCHITECTURE.md',
  );
});
