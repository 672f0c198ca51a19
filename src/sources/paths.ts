/**
 * Turning `input.files` into a sorted list of paths: `${data_root}` and `${project}` are expanded, and
 * `*` / `?` wildcards are matched in the last path component (shell style: they do not match a leading dot).
 */
import { readdirSync, statSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';

export interface PathVars {
  dataRoot: string;
  projectRoot: string;
}

export type EntryKind = 'file' | 'dir';

/** Replaces `${data_root}` and `${project}`; any other `${...}` is an error. */
export function expandVars(pattern: string, vars: PathVars): string {
  return pattern.replace(/\$\{([^}]*)\}/g, (_, name: string) => {
    if (name === 'data_root') return vars.dataRoot;
    if (name === 'project') return vars.projectRoot;
    throw new Error(`input.files: unknown variable \${${name}} in "${pattern}" (known: \${data_root}, \${project})`);
  });
}

const hasWildcard = (s: string) => /[*?]/.test(s);

function wildcardRegExp(glob: string): RegExp {
  const body = glob
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 's');
}

function isKind(path: string, kind: EntryKind): boolean {
  try {
    const st = statSync(path); // follows symlinks
    return kind === 'file' ? st.isFile() : st.isDirectory();
  } catch {
    return false;
  }
}

/**
 * Expands every pattern; returns unique absolute paths sorted by path. Paths without wildcards are kept
 * as they are (open() reports a missing one). Throws naming the patterns that matched nothing.
 */
export function expandPatterns(patterns: string[], vars: PathVars, kind: EntryKind): string[] {
  if (patterns.length === 0) throw new Error('input.files is empty: list at least one file or pattern');
  const found = new Set<string>();
  const unmatched: string[] = [];
  for (const pattern of patterns) {
    const path = resolve(expandVars(pattern, vars));
    const dir = dirname(path);
    const name = basename(path);
    if (hasWildcard(dir)) {
      throw new Error(`input.files: "${pattern}": wildcards are only supported in the last path component`);
    }
    if (!hasWildcard(name)) {
      found.add(path);
      continue;
    }
    const re = wildcardRegExp(name);
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      unmatched.push(`"${pattern}" (directory ${dir} cannot be read)`);
      continue;
    }
    const matches = names
      .filter((n) => re.test(n) && (n[0] !== '.' || name[0] === '.'))
      .map((n) => resolve(dir, n))
      .filter((p) => isKind(p, kind));
    if (matches.length === 0)
      unmatched.push(`"${pattern}" (no ${kind === 'file' ? 'files' : 'directories'} match in ${dir})`);
    for (const m of matches) found.add(m);
  }
  if (unmatched.length > 0) throw new Error(`input.files: nothing matched ${unmatched.join(', ')}`);
  return [...found].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}
