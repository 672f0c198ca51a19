/**
 * SSRF guard enforced where connections are made: a DNS lookup that drops non-public addresses, and a
 * connector that refuses literal non-public IP hosts (node's net.connect does no lookup for those).
 * Because every connection of the shared Agent goes through here, redirects and DNS rebinding (a name
 * that resolves to a public address once and a private one later) cannot get around it.
 */
import dns from 'node:dns';
import net from 'node:net';
import { buildConnector } from 'undici';
import { isPrivateAddress } from './private-address.ts';

export const PRIVATE_ADDRESS_CODE = 'ERR_MUSE_PRIVATE_ADDRESS';

export class PrivateAddressError extends Error {
  readonly code = PRIVATE_ADDRESS_CODE;
  constructor(
    readonly host: string,
    readonly address: string,
  ) {
    super(
      host === address
        ? `refused: ${address} is a private address`
        : `refused: ${host} resolves to private address ${address}`,
    );
  }
}

type LookupAddress = { address: string; family: number };
type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;
/** The lookup signature net.connect calls (with `all: true` when it races IPv4/IPv6). */
export type LookupFunction = (hostname: string, options: dns.LookupOptions, callback: LookupCallback) => void;

/** Wraps a lookup so that only public addresses come back; if none are left, fails with PrivateAddressError. */
export function guardedLookup(inner: LookupFunction = dns.lookup as unknown as LookupFunction): LookupFunction {
  return (hostname, options, callback) => {
    inner(hostname, { ...options, all: true }, (err, result) => {
      if (err) return callback(err, []);
      const all = result as LookupAddress[];
      const allowed = all.filter((a) => !isPrivateAddress(a.address));
      if (allowed.length === 0) {
        return callback(new PrivateAddressError(hostname, all[0]?.address ?? hostname), []);
      }
      if (options.all) callback(null, allowed);
      else callback(null, allowed[0].address, allowed[0].family);
    });
  };
}

export interface GuardOptions {
  /** Connector options shared by both paths (connect timeout, TLS ca, ...). */
  connect: buildConnector.BuildOptions;
  /** false = no guard at all (allow_private_network). */
  enabled: boolean;
  /** `protocol//host[:port]` origins that skip the guard (operator-configured rewrite targets). */
  trustedOrigins: ReadonlySet<string>;
}

/** Builds the undici connector for the shared Agent. */
export function createGuardedConnector(opts: GuardOptions): buildConnector.connector {
  const open = buildConnector(opts.connect);
  if (!opts.enabled) return open;
  const guarded = buildConnector({ ...opts.connect, lookup: guardedLookup() } as buildConnector.BuildOptions);
  return (options, callback) => {
    const origin = `${options.protocol}//${options.host ?? options.hostname}`;
    if (opts.trustedOrigins.has(origin)) return open(options, callback);
    if (net.isIP(options.hostname) && isPrivateAddress(options.hostname)) {
      return callback(new PrivateAddressError(options.hostname, options.hostname), null);
    }
    return guarded(options, callback);
  };
}
