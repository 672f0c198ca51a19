/**
 * Response headers by which a site forbids use of an image (dataset-facts 6.1, 6.4): X-Robots-Tag
 * (parsed like img2dataset) and TDMRep `tdm-reservation`.
 */

/** A header as undici reports it: absent, one value, or one value per repeated header line. */
export type HeaderValue = string | string[] | undefined;

function values(header: HeaderValue): string[] {
  if (header === undefined) return [];
  return Array.isArray(header) ? header : [header];
}

/**
 * Returns the first disallowed X-Robots-Tag directive that applies to us, or null.
 * Each header value is `[<ua-token>:] directive, directive, ...`; it is split at the first `:`, and
 * the directives apply to everyone when there is no token, else only to that token. Unlike img2dataset
 * the token is compared trimmed and case-insensitively (robots tokens are case-insensitive).
 */
export function xRobotsTagBlock(
  header: HeaderValue,
  userAgentToken: string,
  disallowedDirectives: readonly string[],
): string | null {
  const disallowed = new Set(disallowedDirectives.map((d) => d.trim().toLowerCase()));
  if (disallowed.size === 0) return null;
  const ours = userAgentToken.trim().toLowerCase();
  for (const value of values(header)) {
    const colon = value.indexOf(':');
    const token = colon >= 0 ? value.slice(0, colon).trim().toLowerCase() : null;
    if (token !== null && token !== ours) continue;
    const directives = (colon >= 0 ? value.slice(colon + 1) : value).split(',');
    for (const raw of directives) {
      const directive = raw.trim().toLowerCase();
      if (disallowed.has(directive)) return token === null ? directive : `${token}: ${directive}`;
    }
  }
  return null;
}

/** True when a `tdm-reservation` header says `1` (rights reserved). */
export function tdmReserved(header: HeaderValue): boolean {
  return values(header).some((v) => v.trim() === '1');
}
