/**
 * The local runtime's event stream: die and destroy events are published the moment the runtime learns them
 * (a child's exit, a watched pid gone, a remove) to every open `events()` iteration. The last events are kept in
 * a bounded ring so a subscriber reconnecting with `since` gets what it missed, as Docker's event buffer does.
 */
import type { RuntimeEvent } from '../driver.js';

export const DEFAULT_EVENT_RING = 1024;

interface Subscriber {
  queue: RuntimeEvent[];
  wake: (() => void) | null;
}

export class EventHub {
  private readonly ring: RuntimeEvent[] = [];
  private readonly subscribers = new Set<Subscriber>();
  private lastNano = 0;

  constructor(private readonly ringSize = DEFAULT_EVENT_RING) {}

  /** Stamps the event with a strictly increasing time (the reaper orders catch-up by it) and delivers it. */
  publish(event: Omit<RuntimeEvent, 'timeNano'>): void {
    const now = Date.now() * 1e6;
    this.lastNano = Math.max(now, this.lastNano + 1);
    const stamped: RuntimeEvent = { ...event, timeNano: this.lastNano };
    this.ring.push(stamped);
    if (this.ring.length > this.ringSize) this.ring.shift();
    for (const s of this.subscribers) {
      s.queue.push(stamped);
      const wake = s.wake;
      s.wake = null;
      wake?.();
    }
  }

  /** Events from `since` (seconds) on, until the signal aborts; it never breaks by itself. */
  async *follow(options: { since?: number; signal: AbortSignal }): AsyncGenerator<RuntimeEvent> {
    const { signal } = options;
    const sinceNano = options.since !== undefined ? options.since * 1e9 : Infinity;
    const sub: Subscriber = { queue: this.ring.filter((e) => e.timeNano >= sinceNano), wake: null };
    this.subscribers.add(sub);
    const onAbort = (): void => {
      const wake = sub.wake;
      sub.wake = null;
      wake?.();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      while (!signal.aborted) {
        while (sub.queue.length && !signal.aborted) yield sub.queue.shift()!;
        if (signal.aborted) return;
        await new Promise<void>((resolve) => (sub.wake = resolve));
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      this.subscribers.delete(sub);
    }
  }
}
