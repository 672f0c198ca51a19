// Pure parts of the download stage: address classification, opt-out header parsing, guarded DNS, backoff.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isPrivateAddress } from '../../src/fetch/private-address.ts';
import { tdmReserved, xRobotsTagBlock } from '../../src/fetch/opt-out-headers.ts';
import { guardedLookup, PRIVATE_ADDRESS_CODE, type LookupFunction } from '../../src/fetch/guard.ts';
import { backoffDelay, parseRetryAfter } from '../../src/fetch/backoff.ts';
import { buildUserAgent } from '../../src/fetch/user-agent.ts';
import { classifyError } from '../../src/fetch/errors.ts';

test('isPrivateAddress: table', () => {
  const table: Array<[string, boolean]> = [
    ['8.8.8.8', false],
    ['1.1.1.1', false],
    ['93.184.216.34', false],
    ['172.15.255.255', false],
    ['172.32.0.1', false],
    ['100.63.255.255', false],
    ['100.128.0.1', false],
    ['169.253.1.1', false],
    ['223.255.255.255', false],
    ['10.0.0.5', true],
    ['10.255.255.255', true],
    ['172.16.0.1', true],
    ['172.31.255.255', true],
    ['192.168.1.1', true],
    ['127.0.0.1', true],
    ['127.8.9.10', true],
    ['169.254.169.254', true],
    ['100.64.0.1', true],
    ['100.127.255.255', true],
    ['0.0.0.0', true],
    ['0.1.2.3', true],
    ['224.0.0.1', true],
    ['239.255.255.250', true],
    ['255.255.255.255', true],
    ['2606:4700:4700::1111', false],
    ['2001:4860:4860::8888', false],
    ['::1', true],
    ['::', true],
    ['0:0:0:0:0:0:0:1', true],
    ['[::1]', true],
    ['fe80::1', true],
    ['fe80::1%eth0', true],
    ['febf::1', true],
    ['fc00::1', true],
    ['fd12:3456::1', true],
    ['ff02::1', true],
    ['2001:db8::1', true],
    ['::ffff:127.0.0.1', true],
    ['::ffff:7f00:1', true],
    ['::ffff:10.0.0.5', true],
    ['::ffff:192.168.0.1', true],
    ['::FFFF:169.254.169.254', true],
    ['::ffff:8.8.8.8', false],
    ['64:ff9b::10.0.0.1', true],
    ['64:ff9b::8.8.8.8', false],
    ['2002:c0a8:0101::1', true], // 6to4 of 192.168.1.1
    ['2002:0808:0808::1', false], // 6to4 of 8.8.8.8
    // not IP literals: fail closed
    ['', true],
    ['example.com', true],
    ['256.1.1.1', true],
    ['1.2.3', true],
    ['1:2:3:4:5:6:7:8:9', true],
    ['1::2::3', true],
  ];
  const wrong = table.filter(([ip, expected]) => isPrivateAddress(ip) !== expected);
  assert.deepEqual(wrong, []);
});

test('X-Robots-Tag: img2dataset-style parsing', () => {
  const dis = ['noai', 'noimageai', 'noindex', 'noimageindex'];
  const block = (h: string | string[] | undefined, token = 'musebot') => xRobotsTagBlock(h, token, dis);
  assert.equal(block(undefined), null);
  assert.equal(block('noai'), 'noai');
  assert.equal(block(' NoImageAI , nofollow'), 'noimageai');
  assert.equal(block('nofollow, noarchive'), null);
  assert.equal(block('otherbot: noai'), null);
  assert.equal(block('musebot: noimageai'), 'musebot: noimageai');
  assert.equal(block('MuseBot : noai'), 'musebot: noai');
  assert.equal(block(['otherbot: noai', 'noindex']), 'noindex');
  assert.equal(block(['otherbot: noai', 'all']), null);
  assert.equal(xRobotsTagBlock('noai', 'musebot', []), null, 'an empty list disables the check');
  assert.equal(xRobotsTagBlock('NOAI', 'musebot', ['NoAI']), 'noai');
});

test('tdm-reservation', () => {
  assert.equal(tdmReserved('1'), true);
  assert.equal(tdmReserved(' 1 '), true);
  assert.equal(tdmReserved('0'), false);
  assert.equal(tdmReserved(undefined), false);
  assert.equal(tdmReserved(['0', '1']), true);
});

test('guardedLookup drops private answers and refuses when none are left (DNS rebinding)', async () => {
  const answers = [
    [{ address: '93.184.216.34', family: 4 }],
    [{ address: '127.0.0.1', family: 4 }],
    [
      { address: '10.0.0.1', family: 4 },
      { address: '8.8.8.8', family: 4 },
    ],
  ];
  let call = 0;
  const fake: LookupFunction = (_host, _opts, cb) => cb(null, answers[call++]);
  const lookup = guardedLookup(fake);
  const run = (all: boolean) =>
    new Promise<{ err: NodeJS.ErrnoException | null; address: unknown }>((resolve) =>
      lookup('rebind.example', { all }, (err, address) => resolve({ err, address })),
    );
  const first = await run(false);
  assert.equal(first.err, null);
  assert.equal(first.address, '93.184.216.34');
  const second = await run(false);
  assert.equal(second.err?.code, PRIVATE_ADDRESS_CODE);
  assert.match(second.err?.message ?? '', /rebind\.example resolves to private address 127\.0\.0\.1/);
  const third = await run(true);
  assert.equal(third.err, null);
  assert.deepEqual(third.address, [{ address: '8.8.8.8', family: 4 }]);
});

test('backoff grows exponentially with jitter and Retry-After parses both forms', () => {
  assert.equal(
    backoffDelay(1, 200, 10_000, () => 0),
    100,
  );
  assert.equal(
    backoffDelay(1, 200, 10_000, () => 1),
    200,
  );
  assert.equal(
    backoffDelay(3, 200, 10_000, () => 1),
    800,
  );
  assert.equal(
    backoffDelay(20, 200, 10_000, () => 1),
    10_000,
  );
  assert.equal(parseRetryAfter('2'), 2000);
  assert.equal(parseRetryAfter(undefined), null);
  assert.equal(parseRetryAfter('soon'), null);
  const now = Date.parse('2024-01-01T00:00:00Z');
  assert.equal(parseRetryAfter('Mon, 01 Jan 2024 00:00:03 GMT', now), 3000);
});

test('User-Agent is img2dataset style', () => {
  assert.equal(
    buildUserAgent('musebot'),
    'Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:72.0) Gecko/20100101 Firefox/72.0 (compatible; musebot; +https://github.com/muse)',
  );
  assert.equal(buildUserAgent(''), 'Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:72.0) Gecko/20100101 Firefox/72.0');
});

test('classifyError: codes, causes and transience', () => {
  const err = (code: string, cause?: unknown) => Object.assign(new Error(`e ${code}`), { code, cause });
  const table: Array<[unknown, string, boolean]> = [
    [err('UND_ERR_CONNECT_TIMEOUT'), 'connect_timeout', true],
    [err('UND_ERR_SOCKET'), 'connection_reset', true],
    [err('ECONNRESET'), 'connection_reset', true],
    [err('ECONNREFUSED'), 'connection_refused', false],
    [err('ENOTFOUND'), 'dns', false],
    [err('EAI_AGAIN'), 'dns', true],
    [err('DEPTH_ZERO_SELF_SIGNED_CERT'), 'tls', false],
    [err('HPE_INVALID_CONSTANT'), 'bad_response', false],
    [new TypeError('fetch failed', { cause: err('ECONNRESET') }), 'connection_reset', true],
    [new Error('odd'), 'network', false],
  ];
  for (const [e, reason, transient] of table) {
    const c = classifyError(e);
    assert.deepEqual([c.reason, c.transient], [reason, transient], String(e));
  }
});
