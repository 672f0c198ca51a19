/** Maps errors thrown by undici / node's net, tls and dns to the downloader's failure reasons. */
import { PRIVATE_ADDRESS_CODE } from './guard.ts';

export interface Classified {
  reason: string;
  error: string;
  /** Worth another attempt (timeouts, resets, truncated bodies, temporary DNS failure). */
  transient: boolean;
}

const TLS_CODES = /^(ERR_TLS_|ERR_SSL_|CERT_|DEPTH_ZERO_|SELF_SIGNED_|UNABLE_TO_|HOSTNAME_MISMATCH)/;

/** The error's own code, or the first code found along its `cause` chain. */
function codeOf(err: unknown): string {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return '';
}

function messageOf(err: unknown): string {
  if (err instanceof Error) {
    const cause = err.cause instanceof Error && err.cause.message !== err.message ? ` (${err.cause.message})` : '';
    return `${err.message}${cause}`;
  }
  return String(err);
}

export function classifyError(err: unknown): Classified {
  const code = codeOf(err);
  const error = messageOf(err);
  const is = (reason: string, transient: boolean): Classified => ({ reason, error, transient });
  switch (code) {
    case PRIVATE_ADDRESS_CODE:
      return is('private_address', false);
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'ETIMEDOUT':
      return is('connect_timeout', true);
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return is('timeout', true);
    case 'UND_ERR_SOCKET':
    case 'ECONNRESET':
    case 'EPIPE':
    case 'ECONNABORTED':
      return is('connection_reset', true);
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH':
      return is('truncated', true);
    case 'ECONNREFUSED':
      // Usually a host that is down or has nothing listening: not worth the retry budget.
      return is('connection_refused', false);
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return is('unreachable', false);
    case 'ENOTFOUND':
    case 'ENODATA':
      return is('dns', false);
    case 'EAI_AGAIN':
      return is('dns', true);
    case 'UND_ERR_HEADERS_OVERFLOW':
      return is('bad_response', false);
    case 'UND_ERR_INVALID_ARG':
      return is('bad_url', false);
    case 'UND_ERR_CLOSED':
    case 'UND_ERR_DESTROYED':
      return is('closed', false);
  }
  if (code.startsWith('HPE_')) return is('bad_response', false);
  if (TLS_CODES.test(code)) return is('tls', false);
  return is(code ? `network_${code.toLowerCase()}` : 'network', false);
}
