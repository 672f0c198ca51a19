/**
 * The hostile corpus of `npm run bench -- fetch-hostile`: which origin each row's URL points at, and (on the
 * main origin) how the server treats it. Deterministic per row. The main origin's mix is the one a user met
 * (1% hang, 0.5% reset, 4% slow 0.3–3 s, 6% 404, 3% redirect, 1% HTML, 0.5% `X-Robots-Tag: noai`); around it,
 * origins that refuse, never finish TLS, stall mid-body, rate-limit, die halfway, and ten small healthy ones.
 */
import { mulberry32 } from '../src/util/prng.ts';

export const ORIGINS = [
  'main',
  'dying',
  'refused',
  'tls_hang',
  'body_hang',
  'rate_limited',
  'small0',
  'small1',
  'small2',
  'small3',
  'small4',
  'small5',
  'small6',
  'small7',
  'small8',
  'small9',
] as const;
export type OriginName = (typeof ORIGINS)[number];

export type MainKind = 'ok' | 'hang' | 'reset' | 'slow' | 'dead' | 'redirect' | 'html' | 'noai';
export interface Row {
  origin: OriginName;
  /** what the main origin does with it ('ok' elsewhere) */
  kind: MainKind;
  delayMs: number;
}

/** Share of rows per origin (the rest, 60%, on `main`). */
const SHARES: Array<[OriginName, number]> = [
  ['dying', 0.16],
  ['refused', 0.02],
  ['tls_hang', 0.02],
  ['body_hang', 0.02],
  ['rate_limited', 0.03],
  ...Array.from({ length: 10 }, (_, k) => [`small${k}` as OriginName, 0.015] as [OriginName, number]),
];
const MAIN_MIX: Array<[MainKind, number]> = [
  ['hang', 0.01],
  ['reset', 0.005],
  ['slow', 0.04],
  ['dead', 0.06],
  ['redirect', 0.03],
  ['html', 0.01],
  ['noai', 0.005],
];

export function rowOf(index: number): Row {
  const r = mulberry32(0x2545f491 ^ Math.imul(index + 1, 2654435761));
  let u = r();
  let origin: OriginName = 'main';
  for (const [name, share] of SHARES) {
    if (u < share) {
      origin = name;
      break;
    }
    u -= share;
  }
  if (origin !== 'main') return { origin, kind: 'ok', delayMs: 0 };
  let v = r();
  for (const [kind, share] of MAIN_MIX) {
    if (v < share) return { origin, kind, delayMs: kind === 'slow' ? 300 + Math.floor(r() * 2700) : 0 };
    v -= share;
  }
  return { origin, kind: 'ok', delayMs: 0 };
}

/** The URL of row `index` of the hostile corpus, given the origins' ports. */
export function hostileUrl(index: number, ports: Record<OriginName, number>): string {
  const { origin } = rowOf(index);
  const scheme = origin === 'tls_hang' ? 'https' : 'http';
  return `${scheme}://127.0.0.1:${ports[origin]}/r/${index}`;
}

/** The URL of row `index` of the clean corpus: every row an image from the main origin. */
export function cleanUrl(index: number, ports: Record<OriginName, number>): string {
  return `http://127.0.0.1:${ports.main}/clean/${index}`;
}

/** Rows that can end `ok` when every origin behaves as described (the dying origin's first half included). */
export function expectedCounts(rows: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = 0; i < rows; i++) {
    const r = rowOf(i);
    const k = r.origin === 'main' ? r.kind : r.origin;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}
