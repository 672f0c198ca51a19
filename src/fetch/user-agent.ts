/** img2dataset-style User-Agent: a common browser string plus a `compatible;` token sites can target. */
const BROWSER = 'Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:72.0) Gecko/20100101 Firefox/72.0';
const PROJECT_URL = 'https://github.com/muse';

export function buildUserAgent(userAgentToken: string): string {
  const token = userAgentToken.trim();
  return token ? `${BROWSER} (compatible; ${token}; +${PROJECT_URL})` : BROWSER;
}
