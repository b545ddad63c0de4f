/**
 * The emulators' stdout: one JSON object per line, a ready line once and a stats line last
 * (emulators/CONTRACT.md). Runtime-neutral, so teardown reads stats without knowing the driver.
 */

/** Parses one stdout line; null for anything that is not a JSON object. */
export function parseEventLine(line: string): Record<string, unknown> | null {
  const text = line.trim();
  if (!text.startsWith('{')) return null;
  try {
    const value: unknown = JSON.parse(text);
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** The last stats line in a log dump (the emulators print exactly one, last). */
export function findStatsLine(output: string): Record<string, unknown> | null {
  const lines = output.split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const event = parseEventLine(lines[i]!);
    if (event?.event === 'stats') return event;
  }
  return null;
}
