/**
 * Which IP addresses the downloader must not connect to (SSRF guard): everything that is not a public
 * unicast address. Pure functions, no DNS.
 */

/** Parses dotted-quad IPv4 (exactly four decimal parts, as DNS and the URL parser produce). */
function parseIPv4(text: string): number[] | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  const bytes: number[] = [];
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) return null;
    const n = Number(part);
    if (n > 255) return null;
    bytes.push(n);
  }
  return bytes;
}

/** Parses IPv6 (with `::`, an embedded dotted IPv4 tail, optional brackets and `%zone`) into 16 bytes. */
function parseIPv6(text: string): number[] | null {
  let s = text;
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  if (!s.includes(':')) return null;

  // An IPv4 tail (e.g. ::ffff:10.0.0.1) is rewritten as the two 16-bit groups it stands for.
  const lastColon = s.lastIndexOf(':');
  if (s.slice(lastColon + 1).includes('.')) {
    const v4 = parseIPv4(s.slice(lastColon + 1));
    if (!v4) return null;
    const hex = (hi: number, lo: number) => ((hi << 8) | lo).toString(16);
    s = `${s.slice(0, lastColon + 1)}${hex(v4[0], v4[1])}:${hex(v4[2], v4[3])}`;
  }

  const halves = s.split('::');
  if (halves.length > 2) return null;
  const toGroups = (h: string): number[] | null => {
    if (h === '') return [];
    const groups: number[] = [];
    for (const g of h.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
      groups.push(parseInt(g, 16));
    }
    return groups;
  };
  const head = toGroups(halves[0]);
  const rest = halves.length === 2 ? toGroups(halves[1]) : [];
  if (!head || !rest) return null;
  const explicit = head.length + rest.length;
  let groups: number[];
  if (halves.length === 2) {
    if (explicit > 7) return null;
    groups = [...head, ...new Array<number>(8 - explicit).fill(0), ...rest];
  } else {
    if (explicit !== 8) return null;
    groups = head;
  }
  const bytes: number[] = [];
  for (const g of groups) bytes.push(g >> 8, g & 0xff);
  return bytes;
}

/** True when the first `bits` bits of `bytes` equal those of `prefix`. */
function inPrefix(bytes: number[], prefix: number[], bits: number): boolean {
  for (let i = 0; i < bits; i++) {
    const byte = i >> 3;
    const mask = 0x80 >> (i & 7);
    if ((bytes[byte] & mask) !== ((prefix[byte] ?? 0) & mask)) return false;
  }
  return true;
}

/** IPv4 ranges that are not public unicast: [prefix, bits]. */
const IPV4_BLOCKED: Array<[number[], number]> = [
  [[0, 0, 0, 0], 8], // "this network", includes 0.0.0.0
  [[10, 0, 0, 0], 8], // private
  [[100, 64, 0, 0], 10], // carrier-grade NAT
  [[127, 0, 0, 0], 8], // loopback
  [[169, 254, 0, 0], 16], // link-local (cloud metadata lives here)
  [[172, 16, 0, 0], 12], // private
  [[192, 0, 0, 0], 24], // IETF protocol assignments
  [[192, 0, 2, 0], 24], // documentation
  [[192, 168, 0, 0], 16], // private
  [[198, 18, 0, 0], 15], // benchmarking
  [[198, 51, 100, 0], 24], // documentation
  [[203, 0, 113, 0], 24], // documentation
  [[224, 0, 0, 0], 4], // multicast
  [[240, 0, 0, 0], 4], // reserved + broadcast
];

function isBlockedIPv4(bytes: number[]): boolean {
  return IPV4_BLOCKED.some(([prefix, bits]) => inPrefix(bytes, prefix, bits));
}

/** IPv6 prefixes whose last 32 bits are an IPv4 address that decides the answer. */
const IPV6_EMBEDDING_V4: Array<[number[], number]> = [
  [[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff], 96], // IPv4-mapped ::ffff:a.b.c.d
  [[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 96], // IPv4-compatible ::a.b.c.d (deprecated)
  [[0, 0x64, 0xff, 0x9b], 96], // NAT64 64:ff9b::/96
];

const IPV6_BLOCKED: Array<[number[], number]> = [
  [[0xfe, 0x80], 10], // link-local
  [[0xfe, 0xc0], 10], // site-local (deprecated)
  [[0xfc, 0x00], 7], // unique local
  [[0xff, 0x00], 8], // multicast
  [[0x20, 0x01, 0x0d, 0xb8], 32], // documentation
  [[0x01, 0x00], 64], // discard-only 100::/64
];

function isBlockedIPv6(bytes: number[]): boolean {
  if (bytes.every((b) => b === 0)) return true; // ::
  if (bytes.slice(0, 15).every((b) => b === 0) && bytes[15] === 1) return true; // ::1
  for (const [prefix, bits] of IPV6_EMBEDDING_V4) {
    if (inPrefix(bytes, prefix, bits)) return isBlockedIPv4(bytes.slice(12));
  }
  // 6to4 (2002::/16) carries an IPv4 address in bits 16..47.
  if (bytes[0] === 0x20 && bytes[1] === 0x02) return isBlockedIPv4(bytes.slice(2, 6));
  return IPV6_BLOCKED.some(([prefix, bits]) => inPrefix(bytes, prefix, bits));
}

/**
 * True when `ip` is not a public unicast address: private, loopback, link-local, unique-local, CGNAT,
 * multicast, unspecified, reserved/documentation ranges, and IPv4-mapped/NAT64/6to4 forms of those.
 * Anything that does not parse as an IP literal also counts as private (fail closed).
 */
export function isPrivateAddress(ip: string): boolean {
  const v4 = parseIPv4(ip);
  if (v4) return isBlockedIPv4(v4);
  const v6 = parseIPv6(ip);
  if (v6) return isBlockedIPv6(v6);
  return true;
}
