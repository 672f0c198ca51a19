/**
 * `--queue redis://HOST:PORT[/db]`: the Redis every parent and worker of a distributed run talks to.
 * `checkQueue` answers within seconds whether it is reachable, so a wrong URL is a clear error, not a hang.
 */
import { Redis } from 'ioredis';
import type { ConnectionOptions } from 'bullmq';

export class QueueError extends Error {}

/** Everything BullMQ needs to open its own connections. */
export interface QueueConnection {
  url: string;
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
}

export function parseQueueUrl(url: string): QueueConnection {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new QueueError(`--queue: cannot read '${url}' (expected redis://HOST:PORT[/db])`);
  }
  if (u.protocol !== 'redis:')
    throw new QueueError(`--queue: '${url}' is not a redis:// URL (expected redis://HOST:PORT[/db])`);
  if (!u.hostname) throw new QueueError(`--queue: '${url}' names no host`);
  const dbPart = u.pathname.replace(/^\//, '');
  if (dbPart !== '' && !/^\d+$/.test(dbPart))
    throw new QueueError(`--queue: database '${dbPart}' in '${url}' is not a number`);
  return {
    url,
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port ? Number(u.port) : 6379,
    db: dbPart ? Number(dbPart) : 0,
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
  };
}

/** Options for BullMQ's connections: retry for ever (a Redis restart is waited out), as BullMQ requires. */
export function bullConnection(c: QueueConnection): ConnectionOptions {
  return {
    host: c.host,
    port: c.port,
    db: c.db,
    username: c.username,
    password: c.password,
    maxRetriesPerRequest: null,
    retryStrategy: (times: number) => Math.min(200 * times, 2000),
  };
}

/** Connects once, without retries, and PINGs; throws a QueueError naming the URL within `timeoutMs`. */
export async function checkQueue(c: QueueConnection, timeoutMs = 3000): Promise<void> {
  const r = new Redis({
    host: c.host,
    port: c.port,
    db: c.db,
    username: c.username,
    password: c.password,
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  r.on('error', () => {}); // reported below
  const timer = new Promise<never>((_, reject) =>
    setTimeout(() => reject(new Error(`no answer within ${timeoutMs / 1000}s`)), timeoutMs).unref(),
  );
  try {
    await Promise.race([r.connect().then(() => r.ping()), timer]);
  } catch (err) {
    throw new QueueError(
      `--queue ${c.url}: cannot reach Redis (${(err as Error).message}); is redis-server running there?`,
    );
  } finally {
    r.disconnect();
  }
}
