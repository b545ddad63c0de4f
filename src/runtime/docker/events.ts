/** The engine's event stream (newline-delimited JSON), narrowed to RuntimeEvent. */
import { LABEL_INSTANCE, LABEL_ROLE, LABEL_SESSION, type RuntimeEvent } from '../driver.js';
import { LineSplitter } from './output.js';

interface DockerEvent {
  Type?: string;
  Action?: string;
  status?: string;
  id?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
  time?: number;
  timeNano?: number;
}

/** null for events that are neither container nor network ones, or that cannot be read. */
export function toRuntimeEvent(raw: unknown): RuntimeEvent | null {
  if (!raw || typeof raw !== 'object') return null;
  const e = raw as DockerEvent;
  if (e.Type !== 'container' && e.Type !== 'network') return null;
  const attributes = e.Actor?.Attributes ?? {};
  // exec_start: sh -c ... carries its command after a colon; keep only the verb
  const action = (e.Action ?? e.status ?? '').split(':')[0]!.trim();
  const id = e.Actor?.ID ?? e.id;
  if (!action || !id) return null;
  const event: RuntimeEvent = {
    type: e.Type,
    action,
    id,
    timeNano: typeof e.timeNano === 'number' ? e.timeNano : (e.time ?? 0) * 1e9,
  };
  if (attributes[LABEL_SESSION]) event.session = attributes[LABEL_SESSION];
  if (attributes[LABEL_ROLE]) event.role = attributes[LABEL_ROLE];
  if (attributes[LABEL_INSTANCE]) event.instance = attributes[LABEL_INSTANCE];
  if (attributes.exitCode !== undefined && /^-?\d+$/.test(attributes.exitCode)) event.exitCode = Number(attributes.exitCode);
  return event;
}

/** Turns a readable of event JSON lines into RuntimeEvents; throws when the stream breaks. */
export async function* readEvents(stream: NodeJS.ReadableStream, signal: AbortSignal): AsyncGenerator<RuntimeEvent> {
  const queue: RuntimeEvent[] = [];
  let wake: (() => void) | null = null;
  let ended = false;
  let failure: Error | null = null;
  const notify = (): void => {
    const w = wake;
    wake = null;
    w?.();
  };
  const lines = new LineSplitter((line) => {
    if (!line.trim()) return;
    try {
      const event = toRuntimeEvent(JSON.parse(line));
      if (event) queue.push(event);
    } catch {
      // a torn line cannot be recovered; the next one starts fresh
    }
  });
  stream.on('data', (chunk: Buffer) => {
    lines.push(chunk);
    notify();
  });
  stream.on('end', () => {
    ended = true;
    notify();
  });
  stream.on('close', () => {
    ended = true;
    notify();
  });
  stream.on('error', (err: Error) => {
    failure = err;
    notify();
  });
  const onAbort = (): void => {
    (stream as unknown as { destroy?: () => void }).destroy?.();
    notify();
  };
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    while (true) {
      while (queue.length) yield queue.shift()!;
      if (signal.aborted) return;
      if (failure && !signal.aborted) throw failure;
      if (ended) throw new Error('the Docker event stream ended');
      await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    (stream as unknown as { destroy?: () => void }).destroy?.();
  }
}
