/** TLS trust: node's defaults, plus an extra certificate (e.g. a self-signed test or benchmark server). */
import fs from 'node:fs';
import tls from 'node:tls';

/**
 * The `ca` list for TLS connections, or undefined to keep node's defaults (which already include
 * NODE_EXTRA_CA_CERTS). Passing `ca` to tls.connect replaces the defaults, so when an extra certificate
 * is given the bundled roots and NODE_EXTRA_CA_CERTS are added back explicitly.
 */
export function caList(extra: string | Buffer | undefined): Array<string | Buffer> | undefined {
  if (extra === undefined) return undefined;
  const list: Array<string | Buffer> = [...tls.rootCertificates];
  const envFile = process.env.NODE_EXTRA_CA_CERTS;
  if (envFile) {
    try {
      list.push(fs.readFileSync(envFile));
    } catch {
      // node itself only warns about an unreadable NODE_EXTRA_CA_CERTS; do the same by ignoring it
    }
  }
  list.push(extra);
  return list;
}
