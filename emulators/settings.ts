/**
 * Emulator settings come from env vars the daemon sets (see emulators/CONTRACT.md and README.md).
 * A bad value is a configuration error: the emulator reports it and exits 2 before touching the network.
 */

export const DEFAULT_PROBE_PORT = 7000;
export const DEFAULT_STREAM_PORT = 7100;
export const DEFAULT_PAYLOAD_BYTES = 64;
export const DEFAULT_SEGMENT_FRAMES = 1000;
export const DEFAULT_STREAM_GRACE_MS = 10_000;
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;
/** Unsent bytes a stream consumer may fall behind before it is dropped. */
export const DEFAULT_STREAM_MAX_QUEUE_BYTES = 8 * 1024 * 1024;
export const MAX_PAYLOAD_BYTES = 16 * 1024 * 1024;
export const MAX_COUNT = 0xffff_ffff;

export class SettingError extends Error {}

type Env = Record<string, string | undefined>;

export function intSetting(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const text = raw.trim();
  if (!/^\d+$/.test(text)) throw new SettingError(`${name}: expected an integer in ${min}..${max}, got "${raw}"`);
  const n = Number(text);
  if (n < min || n > max) throw new SettingError(`${name}: expected an integer in ${min}..${max}, got ${n}`);
  return n;
}

function stringSetting(env: Env, name: string, fallback: string): string {
  const raw = env[name]?.trim();
  return raw ? raw : fallback;
}

const idleTimeout = (env: Env): number => intSetting(env, 'EMULATOR_IDLE_TIMEOUT_MS', DEFAULT_IDLE_TIMEOUT_MS, 10, 86_400_000);

export interface ProbeSettings {
  port: number;
  probeId: string;
  count: number;
  payloadBytes: number;
  /** frames/s; 0 = as fast as backpressure allows */
  rate: number;
  /**
   * Fault injection for tests only (PROBE_FAULT_CORRUPT_SEQ): the payload of this seq is sent with one byte
   * flipped while the checksum covers the true bytes. The daemon never sets it; a test bakes it into an image.
   */
  corruptSeq: number;
  idleTimeoutMs: number;
}

export function probeSettings(env: Env): ProbeSettings {
  return {
    port: intSetting(env, 'PROBE_PORT', DEFAULT_PROBE_PORT, 0, 65535),
    probeId: stringSetting(env, 'PROBE_ID', 'probe'),
    count: intSetting(env, 'PROBE_COUNT', 1000, 0, MAX_COUNT),
    payloadBytes: intSetting(env, 'PROBE_PAYLOAD_BYTES', DEFAULT_PAYLOAD_BYTES, 0, MAX_PAYLOAD_BYTES),
    rate: intSetting(env, 'PROBE_RATE', 0, 0, 100_000_000),
    corruptSeq: env.PROBE_FAULT_CORRUPT_SEQ?.trim() ? intSetting(env, 'PROBE_FAULT_CORRUPT_SEQ', 0, 0, MAX_COUNT) : -1,
    idleTimeoutMs: idleTimeout(env),
  };
}

export type StreamMode = 'plain' | 'segmented';

export interface StreamSettings {
  probeHost: string;
  probePort: number;
  port: number;
  mode: StreamMode;
  graceMs: number;
  maxQueueBytes: number;
  idleTimeoutMs: number;
}

export function streamSettings(env: Env): StreamSettings {
  const mode = stringSetting(env, 'STREAM_MODE', 'plain');
  if (mode !== 'plain' && mode !== 'segmented') throw new SettingError(`STREAM_MODE: expected plain or segmented, got "${mode}"`);
  return {
    probeHost: stringSetting(env, 'PROBE_HOST', 'probe'),
    probePort: intSetting(env, 'PROBE_PORT', DEFAULT_PROBE_PORT, 1, 65535),
    port: intSetting(env, 'STREAM_PORT', DEFAULT_STREAM_PORT, 0, 65535),
    mode,
    graceMs: intSetting(env, 'STREAM_GRACE_MS', DEFAULT_STREAM_GRACE_MS, 0, 86_400_000),
    maxQueueBytes: intSetting(env, 'STREAM_MAX_QUEUE_BYTES', DEFAULT_STREAM_MAX_QUEUE_BYTES, 1024, 1024 ** 3),
    idleTimeoutMs: idleTimeout(env),
  };
}

export interface SegmentationSettings {
  streamHost: string;
  streamPort: number;
  segmentFrames: number;
  idleTimeoutMs: number;
}

export function segmentationSettings(env: Env): SegmentationSettings {
  return {
    streamHost: stringSetting(env, 'STREAM_HOST', 'stream'),
    streamPort: intSetting(env, 'STREAM_PORT', DEFAULT_STREAM_PORT, 1, 65535),
    segmentFrames: intSetting(env, 'SEGMENT_FRAMES', DEFAULT_SEGMENT_FRAMES, 1, MAX_COUNT),
    idleTimeoutMs: idleTimeout(env),
  };
}
