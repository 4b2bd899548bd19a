/** How a call retries a 503 (overloaded, gallery unavailable, not ready) and how long it may take. */
export interface RetryPolicy {
  /** Retries after the first attempt (default 2; 0 turns retrying off). */
  retries: number;
  /** Wait when the answer has no Retry-After, doubled each retry (default 250 ms). */
  baseDelayMs: number;
  /** Longest wait the client accepts: a larger Retry-After fails the call instead of sleeping (default 30 s). */
  maxDelayMs: number;
}

export const DEFAULT_RETRY: Readonly<RetryPolicy> = { retries: 2, baseDelayMs: 250, maxDelayMs: 30_000 };

/** Retry-After in ms: delta-seconds or an HTTP date (RFC 9110 §10.2.3); undefined when absent or unreadable. */
export function retryAfterMs(header: string | null, now = Date.now()): number | undefined {
  if (header === null || header.trim() === '') return undefined;
  const trimmed = header.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  // An HTTP date names its day and month ('Wed, 21 Oct 2015 07:28:00 GMT'); Date.parse would
  // also read '-1' or '2' as years, turning a malformed header into "retry now".
  if (!/[a-z]{3}/i.test(trimmed)) return undefined;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
