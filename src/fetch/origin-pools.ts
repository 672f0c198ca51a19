/**
 * One undici Pool per origin, created on demand and dropped once it has neither connections nor requests.
 *
 * Why not undici's Agent: in the installed undici (7.30) Agent's clean-up looks pools up by origin, so a
 * `disconnect` from an old pool (e.g. after a `Connection: close` response) can close the newer pool of the
 * same origin, and from then on every request opens a fresh connection (nodejs/undici#5022, fixed later
 * by #5034). Here eviction checks pool identity, so keep-alive survives a dropped connection.
 */
import { Pool } from 'undici';

export class OriginPools {
  private readonly pools = new Map<string, Pool>();
  private closed = false;

  constructor(private readonly options: Pool.Options) {}

  /** The pool for `origin` (`protocol//host[:port]`). */
  get(origin: string): Pool {
    if (this.closed) throw Object.assign(new Error('downloader is closed'), { code: 'UND_ERR_CLOSED' });
    const existing = this.pools.get(origin);
    if (existing && !existing.closed && !existing.destroyed) return existing;
    const pool = new Pool(origin, this.options);
    const evictIfIdle = () => {
      if (this.pools.get(origin) !== pool) return;
      const { connected, size } = pool.stats;
      if (connected === 0 && size === 0) {
        this.pools.delete(origin);
        void pool.close();
      }
    };
    pool.on('disconnect', evictIfIdle).on('connectionError', evictIfIdle);
    this.pools.set(origin, pool);
    return pool;
  }

  /** Number of live pools (for tests and stats). */
  get size(): number {
    return this.pools.size;
  }

  async close(): Promise<void> {
    this.closed = true;
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.close()));
  }
}
