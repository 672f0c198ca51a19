/**
 * The bundled sample dataset: 300 deterministic image-text rows of coloured shapes, a few of which are
 * deliberately broken so that every pipeline outcome has something to do. See datasets/sample/README.md.
 *
 * Everything here is pure: the same catalog on every call and every machine (fixed-seed PRNG below).
 */
import { COLOR_NAMES, SHAPE_NAMES, type ColorName, type ShapeName } from './palette.ts';
import { mulberry32 } from '../util/prng.ts';

export { COLOR_NAMES, SHAPE_NAMES, type ColorName, type ShapeName } from './palette.ts';

/** URLs in the parquet start with this; `.invalid` never resolves, the fetcher points it at the sample server. */
export const SAMPLE_URL_PREFIX = 'http://sample.invalid/';
export const SAMPLE_ROWS = 300;

/**
 * (shape colour, shape) pairs that appear in NO row, whatever the background, so that a model trained on
 * the sample can be prompted with unseen combinations of seen words. Each colour and shape still appears
 * in many other rows.
 */
export const HELD_OUT_COMBINATIONS: ReadonlyArray<{ color: ColorName; shape: ShapeName }> = [
  { color: 'red', shape: 'triangle' },
  { color: 'blue', shape: 'star' },
  { color: 'yellow', shape: 'cross' },
  { color: 'green', shape: 'square' },
];

export type SampleKind =
  | 'ok'
  | 'dead_404' // server answers 404
  | 'dead_500' // server always answers 500 (retries do not help)
  | 'corrupt_jpeg' // JPEG cut in the middle of its scan data
  | 'html_as_jpeg' // an HTML page served as Content-Type: image/jpeg
  | 'decompression_bomb' // tiny PNG whose IHDR claims 30000x30000
  | 'tiny_image' // 40x40, below any sane min_image_size
  | 'short_caption' // caption "a"
  | 'noai_header' // X-Robots-Tag: noai
  | 'nsfw_tag' // NSFW column says 'NSFW'
  | 'corrupt_similarity'; // similarity 6016.0, like real LAION

export type ExpectedStatus = 'ok' | 'failed' | 'filtered' | 'opted_out';
export type ImageFormat = 'jpg' | 'png' | 'webp';

export interface SampleItem {
  row: number;
  /** LAION-style SAMPLE_ID (int64 in the parquet; here always a safe integer). */
  sampleId: number;
  kind: SampleKind;
  /** The outcome a correct pipeline should record for this row. */
  expected: ExpectedStatus;
  /** Why, in words (not a reason code of any particular stage). */
  why: string;
  caption: string;
  color: ColorName;
  shape: ShapeName;
  background: ColorName;
  /** Image size in pixels as served (for the bomb: as its header claims). */
  width: number;
  height: number;
  /** Shape centre and half-extent in pixels; the shape stays inside [c - size, c + size] on both axes. */
  cx: number;
  cy: number;
  size: number;
  /** The shape's centre is the image centre (floor(w/2), floor(h/2)). */
  centered: boolean;
  format: ImageFormat;
  /** Server path, `/img/<row>.<ext>`. */
  path: string;
  /** `${SAMPLE_URL_PREFIX}img/<row>.<ext>`. */
  url: string;
  similarity: number;
  nsfw: 'UNLIKELY' | 'NSFW';
}

/** The one caption template of the dataset. */
export function sampleCaption(color: ColorName, shape: ShapeName, background: ColorName): string {
  return `a ${color} ${shape} on a ${background} background`;
}

export function isHeldOut(color: ColorName, shape: ShapeName): boolean {
  return HELD_OUT_COMBINATIONS.some((c) => c.color === color && c.shape === shape);
}

/** Fixed rows of the special kinds, spread through the dataset (and over the first/later row groups). */
export const SPECIAL_ROWS: ReadonlyMap<number, SampleKind> = new Map<number, SampleKind>([
  [17, 'dead_404'],
  [43, 'noai_header'],
  [71, 'short_caption'],
  [98, 'corrupt_jpeg'],
  [124, 'dead_500'],
  [151, 'decompression_bomb'],
  [177, 'tiny_image'],
  [203, 'html_as_jpeg'],
  [229, 'nsfw_tag'],
  [256, 'dead_404'],
  [283, 'corrupt_similarity'],
]);

const EXPECTED: Record<SampleKind, [ExpectedStatus, string]> = {
  ok: ['ok', 'ordinary image'],
  dead_404: ['failed', 'HTTP 404'],
  dead_500: ['failed', 'HTTP 500 on every attempt'],
  corrupt_jpeg: ['failed', 'truncated JPEG does not decode'],
  html_as_jpeg: ['failed', 'body is HTML although Content-Type says image/jpeg'],
  decompression_bomb: ['filtered', 'header claims 30000x30000 (900 Mpx), above max_image_area; never decoded'],
  tiny_image: ['filtered', '40x40, below min_image_size (and below a 5 KB min_file_bytes)'],
  short_caption: ['filtered', 'caption "a" is shorter than min_chars'],
  noai_header: ['opted_out', 'X-Robots-Tag: noai'],
  nsfw_tag: ['filtered', "NSFW column is 'NSFW'"],
  corrupt_similarity: ['filtered', 'similarity 6016.0 is outside the valid range'],
};

export const BOMB_CLAIMED_SIZE = 30000;
export const TINY_SIZE = 40;

type Triple = { color: ColorName; shape: ShapeName; background: ColorName };

/** Every allowed (colour, shape, background) in a fixed order. */
function allowedTriples(): Triple[] {
  const out: Triple[] = [];
  for (const color of COLOR_NAMES)
    for (const shape of SHAPE_NAMES)
      for (const background of COLOR_NAMES)
        if (background !== color && !isHeldOut(color, shape)) out.push({ color, shape, background });
  return out;
}

export function sampleCatalog(): SampleItem[] {
  const rand = mulberry32(0x4d555345); // "MUSE"
  const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1)); // inclusive
  const shuffled = <T>(xs: T[]) => {
    const a = xs.slice();
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [a[i], a[j]] = [a[j], a[i]];
    }
    return a;
  };

  // Draw triples from shuffled decks so that all combinations are about equally frequent.
  const triples = allowedTriples();
  let deck: Triple[] = [];
  const items: SampleItem[] = [];

  for (let row = 0; row < SAMPLE_ROWS; row++) {
    const kind = SPECIAL_ROWS.get(row) ?? 'ok';
    if (deck.length === 0) deck = shuffled(triples);
    const { color, shape, background } = deck.pop()!;

    // Pixel size: 60% square, the rest up to 2:1 either way; sides within [320, 640].
    let width: number;
    let height: number;
    if (rand() < 0.6) {
      width = height = int(320, 640);
    } else {
      const long = int(400, 640);
      const short = int(Math.max(320, Math.ceil(long / 2)), long - 40);
      [width, height] = rand() < 0.5 ? [long, short] : [short, long];
    }
    const r = rand();
    let format: ImageFormat = r < 0.8 ? 'jpg' : r < 0.9 ? 'png' : 'webp';
    const centeredDraw = rand() < 0.3;
    const sizeFrac = 0.38 + rand() * 0.06;
    const posX = rand();
    const posY = rand();
    const similarity = Math.round((0.305 + rand() * 0.095) * 1e6) / 1e6;

    if (kind === 'tiny_image') width = height = TINY_SIZE;
    if (kind === 'decompression_bomb') width = height = BOMB_CLAIMED_SIZE;
    if (kind === 'corrupt_jpeg' || kind === 'html_as_jpeg' || kind === 'tiny_image') format = 'jpg';
    if (kind === 'decompression_bomb') format = 'png';

    // Shape geometry: half-extent `size` (38-44% of the short side), at the centre or up to 5% of the short side
    // off it, so the shape stays whole in the square centre crop and corners are background. Shapes sit near the
    // centre because at 32 px (8x8 tokens) the demo's tiny transformer learns a shape's token layout in its 1,000
    // steps when the layout barely moves; placed anywhere in the picture (as until 2026-12-03), the same run drew
    // shapes the checker recognised in 27% of the images of training prompts. They are large (34-40% until
    // 2026-12-04) because the tiny VQGAN's decoder leaves faint off-colour pixels in the picture's corners, and the
    // checker's shape moments weigh a pixel by its distance from the centre to the fourth power: on its
    // reconstructions a few such pixels turned most stars into "squares" (10 of 56 right; 41 with the 3 pixels at
    // each corner set to the background). Bigger shapes outweigh them: reconstructions 76% -> 90% right shapes.
    const minSide = Math.min(width, height);
    const size = Math.round(minSide * sizeFrac);
    const jitter = Math.round(minSide * 0.05);
    const centered = centeredDraw || kind === 'tiny_image' || kind === 'decompression_bomb';
    const place = (side: number, t: number) => Math.floor(side / 2) + (centered ? 0 : Math.round((2 * t - 1) * jitter));
    const cx = place(width, posX);
    const cy = place(height, posY);

    const [expected, why] = EXPECTED[kind];
    const path = `/img/${row}.${format}`;
    items.push({
      row,
      sampleId: 3_000_000_000 + row * 11,
      kind,
      expected,
      why,
      caption: kind === 'short_caption' ? 'a' : sampleCaption(color, shape, background),
      color,
      shape,
      background,
      width,
      height,
      cx,
      cy,
      size,
      centered,
      format,
      path,
      url: SAMPLE_URL_PREFIX + path.slice(1),
      similarity: kind === 'corrupt_similarity' ? 6016.0 : similarity,
      nsfw: kind === 'nsfw_tag' ? 'NSFW' : 'UNLIKELY',
    });
  }
  return items;
}
