/** Server-rendered pages: escaping, the shared layout and small pieces (tables, an SVG bar chart). */

export function esc(v: unknown): string {
  return String(v ?? '').replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );
}

/** A tagged template whose `${}` values are escaped, except values already wrapped by `raw()`. */
export class Raw {
  constructor(readonly html: string) {}
  toString(): string {
    return this.html;
  }
}
export const raw = (s: string): Raw => new Raw(s);

export function html(strings: TemplateStringsArray, ...values: unknown[]): Raw {
  let out = strings[0];
  values.forEach((v, i) => {
    const part = Array.isArray(v)
      ? v.map((x) => (x instanceof Raw ? x.html : esc(x))).join('')
      : v instanceof Raw
        ? v.html
        : esc(v);
    out += part + strings[i + 1];
  });
  return raw(out);
}

const STYLE = `
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:10px 20px;display:flex;gap:20px;align-items:center}
header a{color:#cfe0ff;text-decoration:none}header b{margin-right:12px}
main{padding:16px 20px;max-width:1200px}
h1{font-size:20px;margin:8px 0 14px}h2{font-size:16px;margin:18px 0 8px}
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #dde;padding:3px 8px;text-align:left;vertical-align:top}
input,select,button{font:inherit;padding:3px 6px}button{cursor:pointer}
.grid{display:flex;flex-wrap:wrap;gap:10px}.card{background:#fff;border:1px solid #dde;width:150px;padding:6px;font-size:12px}
.card img{width:128px;height:128px;object-fit:cover;display:block;background:#eee}
.muted{color:#667}.err{color:#a00}.ok{color:#070}.box{background:#fff;border:1px solid #dde;padding:10px;margin:8px 0}
form.row{display:flex;gap:8px;flex-wrap:wrap;align-items:end}form.row label{display:flex;flex-direction:column;font-size:12px}
pre{background:#fff;border:1px solid #dde;padding:8px;overflow:auto;max-height:400px}
.chart rect{fill:#4a78c2}.chart text{font-size:11px;fill:#1d2330}
.side{display:flex;gap:20px;flex-wrap:wrap}.side>div{background:#fff;border:1px solid #dde;padding:8px}
.side img{width:192px;height:192px;image-rendering:pixelated;background:#eee}
`;

export function page(title: string, body: Raw, opts: { script?: string; play?: boolean } = {}): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)} · muse</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><style>${STYLE}</style></head>
<body><header><b>muse</b><a href="/optout">Opt-out</a><a href="/datasets">Datasets</a>${opts.play ? '<a href="/play">Playground</a>' : ''}</header>
<main>${body.html}</main>${opts.script ? `<script src="/static/${esc(opts.script)}"></script>` : ''}</body></html>`;
}

/** Horizontal bars, one per entry, largest first (counts by status or reason). */
export function barChart(entries: Array<[string, number]>, id: string): Raw {
  const rows = [...entries].sort((a, b) => b[1] - a[1]);
  const max = Math.max(1, ...rows.map((r) => r[1]));
  const h = 18;
  const bars = rows
    .map(([label, n], i) => {
      const w = Math.round((n / max) * 220);
      return `<text x="0" y="${i * h + 13}">${esc(label)}</text><rect x="190" y="${i * h + 3}" width="${w}" height="${h - 6}"></rect><text x="${196 + w}" y="${i * h + 13}">${n}</text>`;
    })
    .join('');
  return raw(
    `<svg class="chart" id="${esc(id)}" width="460" height="${Math.max(h, rows.length * h)}" role="img">${bars}</svg>`,
  );
}
