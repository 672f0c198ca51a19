/**
 * Colours and shapes of the bundled sample dataset. The colours are far apart in RGB (pairwise distance
 * > 110), so "nearest palette colour" is a reliable dominant-colour check even after JPEG compression.
 */

export const COLORS = {
  red: [220, 20, 30],
  yellow: [250, 220, 30],
  green: [30, 160, 50],
  blue: [30, 70, 220],
  purple: [130, 40, 170],
  white: [245, 245, 245],
  black: [15, 15, 15],
} as const satisfies Record<string, readonly [number, number, number]>;

export type ColorName = keyof typeof COLORS;
export const COLOR_NAMES = Object.keys(COLORS) as ColorName[];

export const SHAPE_NAMES = ['circle', 'square', 'triangle', 'star', 'cross'] as const;
export type ShapeName = (typeof SHAPE_NAMES)[number];

/** `#rrggbb` for SVG. */
export function colorHex(name: ColorName): string {
  return '#' + COLORS[name].map((v) => v.toString(16).padStart(2, '0')).join('');
}

/** The palette colour nearest to an RGB triple (squared Euclidean distance). */
export function nearestColor(rgb: readonly number[]): ColorName {
  let best: ColorName = COLOR_NAMES[0];
  let bestDist = Infinity;
  for (const name of COLOR_NAMES) {
    const c = COLORS[name];
    const d = (c[0] - rgb[0]) ** 2 + (c[1] - rgb[1]) ** 2 + (c[2] - rgb[2]) ** 2;
    if (d < bestDist) {
      bestDist = d;
      best = name;
    }
  }
  return best;
}
