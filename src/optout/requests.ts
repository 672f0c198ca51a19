/**
 * Opt-out requests filed by the public (through `muse-data serve`): URLs and/or image sha256s plus an optional
 * contact. A request is `pending` until an operator accepts it (its entries join the opt-out lists at a new list
 * version) or rejects it. Once accepted, it is "applied in <dataset> at <time>" for each dataset whose
 * `optout apply` ran at that version or later (table `optout_applies`).
 */
import { randomBytes } from 'node:crypto';
import type { IndexDb } from '../index-db/db.ts';
import { UrlError, normalizeUrl } from './normalize-url.ts';
import { OptoutStore, SHA256_HEX } from './store.ts';

export const REQUEST_STATES = ['pending', 'accepted', 'rejected'] as const;
export type RequestState = (typeof REQUEST_STATES)[number];

/** Limits on what one request may hold (a request is stored as given, so it is bounded). */
export const REQUEST_LIMITS = { items: 1000, urlChars: 4096, contactChars: 320 } as const;

export class RequestError extends Error {}

export interface OptoutRequest {
  id: number;
  /** The unguessable id of the request's public page. */
  token: string;
  created: string;
  urls: string[];
  sha256s: string[];
  contact: string | null;
  state: RequestState;
  decided: string | null;
  reason: string | null;
  /** Opt-out list version its entries were added at (accepted requests). */
  version: number | null;
}

export interface AppliedIn {
  dataset: string;
  applied: string;
}

export interface RequestInput {
  urls?: unknown;
  sha256s?: unknown;
  contact?: unknown;
}

type Row = Omit<OptoutRequest, 'urls' | 'sha256s'> & { urls: string; sha256s: string };

const fromRow = (r: Row): OptoutRequest => ({
  ...r,
  urls: JSON.parse(r.urls) as string[],
  sha256s: JSON.parse(r.sha256s) as string[],
});

function stringList(v: unknown, what: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string'))
    throw new RequestError(`${what} must be a list of strings`);
  return (v as string[]).map((x) => x.trim()).filter((x) => x !== '');
}

/** Checks a request's fields; every bad entry is named. */
export function validateRequest(input: RequestInput): { urls: string[]; sha256s: string[]; contact: string | null } {
  const urls = stringList(input.urls, 'urls');
  const sha256s = stringList(input.sha256s, 'sha256s').map((h) => h.toLowerCase());
  if (urls.length + sha256s.length === 0) throw new RequestError('a request needs at least one image URL or sha256');
  if (urls.length + sha256s.length > REQUEST_LIMITS.items)
    throw new RequestError(
      `a request holds at most ${REQUEST_LIMITS.items} URLs and hashes (got ${urls.length + sha256s.length}); file several`,
    );
  for (const u of urls) {
    if (u.length > REQUEST_LIMITS.urlChars)
      throw new RequestError(`URL longer than ${REQUEST_LIMITS.urlChars} characters: ${u.slice(0, 80)}...`);
    try {
      normalizeUrl(u);
    } catch (err) {
      if (err instanceof UrlError)
        throw new RequestError(`not a valid image URL: ${JSON.stringify(u.slice(0, 200))} (${err.message})`);
      throw err;
    }
  }
  for (const h of sha256s)
    if (!SHA256_HEX.test(h)) throw new RequestError(`not a sha256 (64 hex digits): ${JSON.stringify(h.slice(0, 100))}`);
  let contact: string | null = null;
  if (input.contact !== undefined && input.contact !== null && input.contact !== '') {
    if (typeof input.contact !== 'string') throw new RequestError('contact must be a string');
    if (input.contact.length > REQUEST_LIMITS.contactChars)
      throw new RequestError(`contact longer than ${REQUEST_LIMITS.contactChars} characters`);
    contact = input.contact.trim();
  }
  return { urls: [...new Set(urls)], sha256s: [...new Set(sha256s)], contact };
}

export function fileRequest(index: IndexDb, input: RequestInput): OptoutRequest {
  const v = validateRequest(input);
  const token = randomBytes(16).toString('hex');
  const created = new Date().toISOString();
  const id = index.write(
    () =>
      index
        .stmt('INSERT INTO optout_requests(token, created, urls, sha256s, contact) VALUES (?, ?, ?, ?, ?) RETURNING id')
        .pluck()
        .get(token, created, JSON.stringify(v.urls), JSON.stringify(v.sha256s), v.contact) as number,
  );
  return requestById(index, id)!;
}

export function requestById(index: IndexDb, id: number): OptoutRequest | undefined {
  const r = index.stmt('SELECT * FROM optout_requests WHERE id = ?').get(id) as Row | undefined;
  return r && fromRow(r);
}

export function requestByToken(index: IndexDb, token: string): OptoutRequest | undefined {
  const r = index.stmt('SELECT * FROM optout_requests WHERE token = ?').get(token) as Row | undefined;
  return r && fromRow(r);
}

export function listRequests(index: IndexDb, state?: RequestState): OptoutRequest[] {
  const rows = (
    state
      ? index.stmt('SELECT * FROM optout_requests WHERE state = ? ORDER BY id').all(state)
      : index.stmt('SELECT * FROM optout_requests ORDER BY id').all()
  ) as Row[];
  return rows.map(fromRow);
}

function pendingRequest(index: IndexDb, id: number): OptoutRequest {
  const r = requestById(index, id);
  if (!r) throw new RequestError(`no opt-out request ${id}`);
  if (r.state !== 'pending')
    throw new RequestError(`request ${id} is already ${r.state}${r.decided ? ` (${r.decided})` : ''}`);
  return r;
}

/** Adds the request's URLs and hashes to the opt-out lists (one new version each) and marks it accepted. */
export function acceptRequest(index: IndexDb, id: number): OptoutRequest {
  index.write(() => {
    const r = pendingRequest(index, id);
    const store = new OptoutStore(index);
    // Nested in this transaction: the store's writes become savepoints, so accept is all or nothing.
    if (r.urls.length) store.addUrls(r.urls);
    if (r.sha256s.length) store.addImages(r.sha256s);
    const version = index.stmt('SELECT version FROM optout_state WHERE id = 1').pluck().get() as number;
    index
      .stmt("UPDATE optout_requests SET state = 'accepted', decided = ?, version = ? WHERE id = ?")
      .run(new Date().toISOString(), version, id);
  });
  return requestById(index, id)!;
}

export function rejectRequest(index: IndexDb, id: number, reason?: string): OptoutRequest {
  index.write(() => {
    pendingRequest(index, id);
    index
      .stmt("UPDATE optout_requests SET state = 'rejected', decided = ?, reason = ? WHERE id = ?")
      .run(new Date().toISOString(), reason ?? null, id);
  });
  return requestById(index, id)!;
}

/** Datasets where an accepted request has been applied: the first `optout apply` at its version or later. */
export function appliedIn(index: IndexDb, r: OptoutRequest): AppliedIn[] {
  if (r.state !== 'accepted' || r.version === null) return [];
  return index
    .stmt(
      `SELECT d.name AS dataset, min(a.applied) AS applied FROM optout_applies a JOIN datasets d ON d.id = a.dataset_id
       WHERE a.version >= ? GROUP BY a.dataset_id ORDER BY d.name`,
    )
    .all(r.version) as AppliedIn[];
}

/** The opt-out version a dataset was last applied at, and when (null: never). */
export function lastApplied(index: IndexDb, datasetId: number): { version: number; applied: string } | null {
  return (
    (index
      .stmt('SELECT version, applied FROM optout_applies WHERE dataset_id = ? ORDER BY version DESC LIMIT 1')
      .get(datasetId) as { version: number; applied: string } | undefined) ?? null
  );
}
