/**
 * A precise connect timeout (DNS + TCP + TLS handshake) around an undici connector. undici's own one runs
 * on its coarse "fast timers" (about 1 s resolution: a 200 ms timeout fires after up to ~1 s), so the
 * inner connector is built with `timeout: 0` and this wrapper enforces `connect_timeout_s` instead.
 */
import type { Socket } from 'node:net';
import type { buildConnector } from 'undici';

export const CONNECT_TIMEOUT_CODE = 'UND_ERR_CONNECT_TIMEOUT';

export function withConnectTimeout(connect: buildConnector.connector, timeoutMs: number): buildConnector.connector {
  if (!(timeoutMs > 0)) return connect;
  return (options, callback) => {
    let settled = false;
    let socket: Socket | undefined;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      socket?.destroy();
      const err = Object.assign(
        new Error(`connect timeout after ${timeoutMs} ms (${options.hostname}:${options.port || 'default port'})`),
        {
          code: CONNECT_TIMEOUT_CODE,
        },
      );
      callback(err, null);
    }, timeoutMs);
    // undici's connectors return the socket they create (the type says void), so it can be destroyed.
    const returned: unknown = connect(options, (...args) => {
      const [, sock] = args;
      if (settled) {
        sock?.destroy();
        return;
      }
      settled = true;
      clearTimeout(timer);
      callback(...args);
    });
    if (returned && typeof (returned as Socket).destroy === 'function') socket = returned as Socket;
  };
}
