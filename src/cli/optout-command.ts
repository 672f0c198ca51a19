/**
 * `muse-data optout add|import|remove|list|check|apply`: the opt-out lists in `<data root>/index.sqlite`.
 * Results go to stdout (one line per entry), problems to stderr; the exit code is 1 when some input was rejected.
 */
import type { Argv } from 'yargs';
import { openIndex, type IndexDb, type SampleRef } from '../index-db/db.ts';
import { OptoutStore, type Rejected } from '../optout/store.ts';
import { IMPORT_FORMATS, importOptoutFile, type ImportFormat } from '../optout/import.ts';
import { applyOptouts, resolveDatasets } from '../optout/apply.ts';
import { UrlError } from '../optout/normalize-url.ts';
import { checkImage, checkUrl } from '../optout/check.ts';
import { withSampleIndex } from '../dataset/sample-index.ts';
import {
  REQUEST_STATES,
  acceptRequest,
  appliedIn,
  listRequests,
  rejectRequest,
  type RequestState,
} from '../optout/requests.ts';
import { optoutVersion } from '../optout/store.ts';
import { resolveDataRoot } from '../dataset/data-root.ts';

type Args = Record<string, unknown>;
type Run = (handler: (a: Args) => Promise<number>) => (a: Args) => Promise<void>;

const out = (s: string) => process.stdout.write(s + '\n');
const err = (s: string) => process.stderr.write(s + '\n');
const list = (a: Args, k: string) => ((a[k] as Array<string | number> | undefined) ?? []).map(String);

async function withStore(
  a: Args,
  fn: (store: OptoutStore, index: IndexDb) => Promise<number> | number,
): Promise<number> {
  const index = openIndex(resolveDataRoot(a['data-root'] as string | undefined));
  try {
    return await fn(new OptoutStore(index), index);
  } finally {
    index.close();
  }
}

function reportRejected(rejected: Rejected[]): number {
  for (const r of rejected) err(`rejected: ${r.error}`);
  return rejected.length ? 1 : 0;
}

function needSome(a: Args, what: string): void {
  if (list(a, 'url').length === 0 && list(a, 'sha256').length === 0)
    throw new UrlError(`optout ${what}: name at least one URL or --sha256 HEX`);
}

const add = (a: Args) =>
  withStore(a, (store) => {
    needSome(a, 'add');
    const u = store.addUrls(list(a, 'url'));
    const i = store.addImages(list(a, 'sha256'));
    out(
      `added ${u.added} URL(s) (${u.already} already opted out), ${i.added} image(s) (${i.already} already opted out)`,
    );
    return reportRejected([...u.invalid, ...i.invalid]);
  });

const remove = (a: Args) =>
  withStore(a, (store) => {
    needSome(a, 'remove');
    const u = store.removeUrls(list(a, 'url'));
    const i = store.removeImages(list(a, 'sha256'));
    out(`removed ${u.removed} URL(s), ${i.removed} image(s)`);
    for (const x of [...u.notFound, ...i.notFound]) err(`not opted out: ${x}`);
    return reportRejected([...u.invalid, ...i.invalid]);
  });

const importFile = (a: Args) =>
  withStore(a, async (store) => {
    const r = await importOptoutFile(store, a.file as string, { format: a.format as ImportFormat | undefined });
    for (const e of r.errors) err(`${r.source}:${e.line}: ${e.message}`);
    if (r.errorCount > r.errors.length) err(`... and ${r.errorCount - r.errors.length} more malformed line(s)`);
    out(
      `${r.source} (${r.format}, ${r.lines} lines): added ${r.urls.added} URL(s) (${r.urls.already} already opted out), ` +
        `${r.images.added} image(s) (${r.images.already} already opted out); ${r.errorCount} malformed line(s) skipped`,
    );
    return r.errorCount ? 1 : 0;
  });

/**
 * URLs as stored (original spelling), then image hashes: the output can be fed back to `optout import`. With
 * `--since V`, only entries added after version V; the current version goes to stderr.
 */
const listAll = (a: Args) =>
  withStore(a, (store, index) => {
    const since = a.since as number | undefined;
    if (since !== undefined && !(Number.isInteger(since) && since >= 0))
      throw new UrlError(`--since must be a list version (an integer >= 0), got ${a.since}`);
    for (const r of store.listUrls(since)) out(r.url);
    for (const r of store.listImages(since)) out(r.sha256);
    err(`opt-out list version ${optoutVersion(index)}`);
    return 0;
  });

const requestsList = (a: Args) =>
  withStore(a, (_store, index) => {
    for (const r of listRequests(index, a.state as RequestState | undefined)) {
      const applied = appliedIn(index, r).map((x) => `${x.dataset}@${x.applied}`);
      out(
        [
          r.id,
          r.state,
          r.created,
          `urls=${r.urls.length}`,
          `sha256s=${r.sha256s.length}`,
          r.contact ? `contact=${r.contact}` : '',
          applied.length ? `applied=${applied.join(',')}` : '',
        ]
          .filter(Boolean)
          .join(' '),
      );
      for (const u of r.urls) out(`  url ${u}`);
      for (const h of r.sha256s) out(`  sha256 ${h}`);
    }
    return 0;
  });

const requestIds = (a: Args): number[] => {
  const ids = list(a, 'id').map(Number);
  const bad = list(a, 'id').filter((x) => !/^\d+$/.test(x));
  if (bad.length || ids.length === 0)
    throw new UrlError(
      `name request ids (integers, as \`optout requests list\` shows them)${bad.length ? `; not ids: ${bad.join(', ')}` : ''}`,
    );
  return ids;
};

const requestsDecide = (accept: boolean) => (a: Args) =>
  withStore(a, (_store, index) => {
    let failed = 0;
    for (const id of requestIds(a)) {
      try {
        const r = accept ? acceptRequest(index, id) : rejectRequest(index, id, a.reason as string | undefined);
        out(
          `request ${id}: ${r.state}${accept ? ` (opt-out list version ${r.version}; run \`muse-data optout apply\` to remove the samples)` : ''}`,
        );
      } catch (e) {
        err(`request ${id}: ${(e as Error).message}`);
        failed++;
      }
    }
    return failed ? 1 : 0;
  });

const check = (a: Args) =>
  withStore(a, (store, index) =>
    withSampleIndex(index, async (sampleIndex) => {
      needSome(a, 'check');
      const rejected: Rejected[] = [];
      const samples = (refs: SampleRef[]) => refs.forEach((s) => out(`${s.dataset} ${s.key} ${s.shard} ${s.status}`));
      for (const url of list(a, 'url')) {
        try {
          const c = await checkUrl(store, url, sampleIndex);
          const why =
            c.storedAs !== undefined
              ? `opted out${c.storedAs !== url ? ` (as ${c.storedAs})` : ''}`
              : c.byImage
                ? 'opted out (its image sha256)'
                : 'not opted out';
          out(`${url}: ${why}`);
          samples(c.samples);
        } catch (e) {
          rejected.push({ input: url, error: (e as Error).message });
        }
      }
      for (const hex of list(a, 'sha256')) {
        try {
          const c = await checkImage(store, hex, sampleIndex);
          out(`${c.sha256}: ${c.optedOut ? 'opted out' : 'not opted out'}`);
          samples(c.samples);
        } catch (e) {
          rejected.push({ input: hex, error: (e as Error).message });
        }
      }
      return reportRejected(rejected);
    }),
  );

const apply = (a: Args) =>
  withStore(a, async (_store, index) => {
    const datasets = resolveDatasets(index, list(a, 'dataset'));
    if (datasets.length === 0) {
      err(`the index ${index.file} knows no dataset yet (fetch registers them); nothing to apply`);
      return 0;
    }
    const results = await applyOptouts(index, datasets, { log: out, progress: err });
    for (const r of results) {
      err(
        `${r.dataset} (${r.path}): removed ${r.removed} sample(s), ${r.shardsRewritten} shard(s) and ${r.cacheFilesRewritten} cache file(s) rewritten${r.skipped.length ? `, ${r.skipped.length} shard(s) skipped` : ''}`,
      );
    }
    return 0;
  });

export function optoutCommands(y: Argv, run: Run) {
  const dataRoot = (yy: Argv) =>
    yy.option('data-root', {
      type: 'string',
      describe: 'data root holding index.sqlite (default: $MUSE_DATA_ROOT or ./datasets)',
    });
  const targets = (yy: Argv, verb: string) =>
    dataRoot(yy)
      .positional('url', { type: 'string', array: true, describe: `image URLs to ${verb}` })
      .option('sha256', { type: 'string', array: true, describe: `image sha256 (64 hex) to ${verb}` });
  // --data-root is known at every level, so a mistyped action is named alone (not with --data-root as "unknown").
  return dataRoot(y)
    .command('add [url..]', 'opt out image URLs (and/or images by --sha256)', (yy) => targets(yy, 'opt out'), run(add))
    .command(
      'import <file>',
      'opt out every URL (or 64-hex sha256) in a file: one per line, or CSV/JSONL with a url and/or sha256 column',
      (yy) =>
        dataRoot(yy).positional('file', { type: 'string', demandOption: true }).option('format', {
          choices: IMPORT_FORMATS,
          describe: 'default: from the extension (.csv, .jsonl), else by the first line',
        }),
      run(importFile),
    )
    .command('remove [url..]', 'withdraw opt-outs', (yy) => targets(yy, 'withdraw'), run(remove))
    .command(
      'list',
      'print every opt-out (URLs as given, then image sha256s)',
      (yy) =>
        dataRoot(yy).option('since', {
          type: 'number',
          describe: 'only entries added after this opt-out list version',
        }),
      run(listAll),
    )
    .command('requests', 'opt-out requests filed through `muse-data serve`: list|accept|reject', (yy) =>
      dataRoot(yy)
        .command(
          'list',
          'list requests (id state created counts contact applied), then their URLs and hashes',
          (y3) => dataRoot(y3).option('state', { choices: REQUEST_STATES }),
          run(requestsList),
        )
        .command(
          'accept <id..>',
          'accept pending requests: their URLs and hashes join the opt-out lists',
          (y3) => dataRoot(y3).positional('id', { type: 'string', array: true }),
          run(requestsDecide(true)),
        )
        .command(
          'reject <id..>',
          'reject pending requests',
          (y3) =>
            dataRoot(y3)
              .positional('id', { type: 'string', array: true })
              .option('reason', { type: 'string', describe: 'shown on the request page' }),
          run(requestsDecide(false)),
        )
        .demandCommand(1, 'name a requests action: list, accept or reject'),
    )
    .command(
      'check [url..]',
      'is it opted out, and which samples hold it: lines "dataset key shard status"',
      (yy) => targets(yy, 'check'),
      run(check),
    )
    .command(
      'apply [dataset..]',
      'remove opted-out samples from fetched datasets (default: every dataset the index knows)',
      (yy) => dataRoot(yy).positional('dataset', { type: 'string', array: true, describe: 'dataset names or folders' }),
      run(apply),
    )
    .demandCommand(1, 'name an optout action: add, import, remove, list, check or apply');
}
