/**
 * Data for `npm run bench -- fetch`: a deterministic catalog of ~3,000 "web images" and their renderer.
 *
 * The images look like photos to a codec: a smooth multi-colour gradient (a tiny random image upscaled with a
 * cubic kernel), soft-edged shapes (some blurred, as if out of focus), a mid-frequency texture and sensor-like
 * noise. At 500–1000 px that puts JPEGs at q70–92 in roughly 30–150 KB, like LAION's photos. About 85% are
 * JPEG, the rest PNG (graphics-like: little noise, so they compress) and WebP. A few percent are dead links
 * (404) and a few are slow (the answer comes after a delay well inside the fetch timeout).
 *
 * Rendered files are cached under os.tmpdir() in a folder named by CATALOG_VERSION: change the version
 * whenever the catalog or renderer changes, and every rerun with the same version reuses the files.
 */
import { existsSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp, { type OverlayOptions } from 'sharp';
import { mulberry32 as prng } from '../src/util/prng.ts';

export const CATALOG_VERSION = 'muse-bench-fetch-v1';

export type ImageFormat = 'jpg' | 'png' | 'webp';

export interface CatalogItem {
  index: number;
  /** Served as `/img/<index>.<format>`. */
  format: ImageFormat;
  width: number;
  height: number;
  /** 'dead' answers 404; 'slow' answers after `delayMs`. */
  kind: 'ok' | 'dead' | 'slow';
  delayMs: number;
  caption: string;
  seed: number;
}

const ADJ = [
  'red',
  'blue',
  'green',
  'golden',
  'misty',
  'quiet',
  'bright',
  'old',
  'small',
  'large',
  'wooden',
  'sunny',
  'dark',
  'colourful',
];
const NOUN = [
  'house',
  'lake',
  'mountain',
  'street',
  'garden',
  'car',
  'dog',
  'cat',
  'bridge',
  'forest',
  'beach',
  'market',
  'kitchen',
  'bicycle',
];
const PLACE = [
  'at sunset',
  'in the morning',
  'in winter',
  'near the sea',
  'in the city',
  'on a hill',
  'under a cloudy sky',
  'in autumn',
];

export function catalogItem(index: number): CatalogItem {
  const r = prng(0x9e3779b9 ^ (index * 2654435761));
  const f = r();
  const format: ImageFormat = f < 0.85 ? 'jpg' : f < 0.93 ? 'png' : 'webp';
  const width = 500 + Math.floor(r() * 501);
  const height = 500 + Math.floor(r() * 501);
  const k = r();
  const kind = k < 0.03 ? 'dead' : k < 0.05 ? 'slow' : 'ok';
  const delayMs = kind === 'slow' ? 500 + Math.floor(r() * 2500) : 0;
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  const caption = `a photo of a ${pick(ADJ)} ${pick(NOUN)} ${pick(PLACE)}`;
  return { index, format, width, height, kind, delayMs, caption, seed: Math.floor(r() * 2 ** 31) };
}

export function catalog(count: number): CatalogItem[] {
  return Array.from({ length: count }, (_, i) => catalogItem(i));
}

/** Renders one item's bytes (deterministic for a given sharp/libvips version). */
export async function renderItem(item: CatalogItem): Promise<Buffer> {
  const r = prng(item.seed);
  const { width: w, height: h } = item;
  const graphic = item.format === 'png';

  // 1. smooth gradient: a 3..6 px random image upscaled with a cubic kernel
  const gw = 3 + Math.floor(r() * 4);
  const gh = 3 + Math.floor(r() * 4);
  const tiny = Buffer.alloc(gw * gh * 3);
  const base = [r() * 255, r() * 255, r() * 255];
  for (let i = 0; i < gw * gh; i++) for (let c = 0; c < 3; c++) tiny[i * 3 + c] = clamp(base[c] + (r() - 0.5) * 200);
  const gradient = await sharp(tiny, { raw: { width: gw, height: gh, channels: 3 } })
    .resize(w, h, { kernel: 'cubic', fit: 'fill' })
    .raw()
    .toBuffer();

  // 2. shapes: a background layer blurred as a whole (out of focus) and a sharp foreground layer
  const layers: string[][] = [[], []];
  const n = 3 + Math.floor(r() * 10);
  for (let s = 0; s < n; s++) {
    const fill = `rgb(${Math.floor(r() * 256)},${Math.floor(r() * 256)},${Math.floor(r() * 256)})`;
    const op = (0.4 + r() * 0.6).toFixed(2);
    const attrs = `fill="${fill}" fill-opacity="${op}"`;
    const cx = r() * w,
      cy = r() * h,
      sz = (0.05 + r() * 0.35) * Math.min(w, h);
    const t = r();
    let shape: string;
    if (t < 0.35) shape = `<circle cx="${cx.toFixed(1)}" cy="${cy.toFixed(1)}" r="${sz.toFixed(1)}" ${attrs}/>`;
    else if (t < 0.6)
      shape = `<ellipse cx="${cx.toFixed(1)}" cy="${cy.toFixed(1)}" rx="${sz.toFixed(1)}" ry="${(sz * (0.3 + r())).toFixed(1)}" ${attrs}/>`;
    else if (t < 0.85)
      shape = `<rect x="${(cx - sz).toFixed(1)}" y="${(cy - sz / 2).toFixed(1)}" width="${(2 * sz).toFixed(1)}" height="${sz.toFixed(1)}" transform="rotate(${(r() * 90 - 45).toFixed(1)} ${cx.toFixed(1)} ${cy.toFixed(1)})" ${attrs}/>`;
    else {
      const pts = Array.from(
        { length: 3 + Math.floor(r() * 4) },
        () => `${(cx + (r() - 0.5) * 2 * sz).toFixed(1)},${(cy + (r() - 0.5) * 2 * sz).toFixed(1)}`,
      ).join(' ');
      shape = `<polygon points="${pts}" ${attrs}/>`;
    }
    layers[r() < 0.5 ? 0 : 1].push(shape);
  }
  const svg = (shapes: string[]) =>
    Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}">${shapes.join('')}</svg>`);
  const overlays: OverlayOptions[] = [];
  if (layers[0].length) {
    const blurred = await sharp(svg(layers[0]))
      .blur(2 + r() * 10)
      .raw()
      .toBuffer();
    overlays.push({ input: blurred, raw: { width: w, height: h, channels: 4 } });
  }
  if (layers[1].length) overlays.push({ input: svg(layers[1]) });
  const composed = await sharp(gradient, { raw: { width: w, height: h, channels: 3 } })
    .composite(overlays)
    .removeAlpha()
    .raw()
    .toBuffer();

  // 3. mid-frequency texture (upscaled random field) and per-pixel noise
  const tw = Math.max(8, Math.round(w / (6 + r() * 20)));
  const th = Math.max(8, Math.round(h / (6 + r() * 20)));
  const tfield = Buffer.alloc(tw * th);
  for (let i = 0; i < tfield.length; i++) tfield[i] = Math.floor(r() * 256);
  const texture = await sharp(tfield, { raw: { width: tw, height: th, channels: 1 } })
    .resize(w, h, { kernel: 'cubic', fit: 'fill' })
    .raw()
    .toBuffer();
  const texAmp = graphic ? 0 : 0.04 + r() * 0.12;
  const noiseAmp = graphic ? 0 : 2 + r() * 6;
  if (texAmp || noiseAmp) {
    // noise from a 64 Ki table (triangular distribution), read from a random offset per row: cheap, and
    // without a visible period
    const nr = prng(item.seed ^ 0x5bd1e995);
    const table = new Float32Array(65536);
    for (let i = 0; i < table.length; i++) table[i] = (nr() + nr() - 1) * noiseAmp;
    for (let y = 0, i = 0; y < h; y++) {
      let o = Math.floor(nr() * 65536);
      for (let x = 0; x < w; x++) {
        const tex = (texture[y * w + x] - 128) * texAmp;
        for (let c = 0; c < 3; c++, i++, o = (o + 1) & 0xffff) composed[i] = clamp(composed[i] + tex + table[o]);
      }
    }
  }

  const img = sharp(composed, { raw: { width: w, height: h, channels: 3 } });
  switch (item.format) {
    case 'jpg':
      return img.jpeg({ quality: 70 + Math.floor(r() * 23), progressive: r() < 0.2, mozjpeg: false }).toBuffer();
    case 'webp':
      return img.webp({ quality: 70 + Math.floor(r() * 20), effort: 2 }).toBuffer();
    case 'png':
      return img.png({ compressionLevel: 6 }).toBuffer();
  }
}

function clamp(x: number): number {
  return x < 0 ? 0 : x > 255 ? 255 : Math.round(x);
}

export function cacheDir(): string {
  return path.join(os.tmpdir(), CATALOG_VERSION);
}

export function itemFile(dir: string, item: CatalogItem): string {
  return path.join(dir, `${item.index}.${item.format}`);
}

/**
 * Makes sure the first `count` catalog items are rendered in the cache folder (dead links too: the file is
 * the image the link would have had, so the same catalog serves any protocol). Renders missing ones with a
 * small concurrency; returns how many were rendered now.
 */
export async function ensureRendered(
  count: number,
  log: (s: string) => void = () => {},
): Promise<{ dir: string; rendered: number; ms: number }> {
  const dir = cacheDir();
  await mkdir(dir, { recursive: true });
  const t0 = performance.now();
  const missing = catalog(count).filter((it) => !existsSync(itemFile(dir, it)));
  if (missing.length)
    log(`rendering ${missing.length} bench images into ${dir} (once; cached by version '${CATALOG_VERSION}')`);
  let next = 0;
  let done = 0;
  const runner = async () => {
    for (let i = next++; i < missing.length; i = next++) {
      const it = missing[i];
      const bytes = await renderItem(it);
      const file = itemFile(dir, it);
      await writeFile(file + '.tmp', bytes);
      await rename(file + '.tmp', file);
      if (++done % 500 === 0) log(`  rendered ${done}/${missing.length}`);
    }
  };
  await Promise.all([runner(), runner(), runner()]);
  return { dir, rendered: missing.length, ms: performance.now() - t0 };
}
