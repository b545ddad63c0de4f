/** Where the local runtime keeps its files under EDGEECHO_DATA_DIR. */
import { join } from 'node:path';
import type { Role } from '../driver.js';

export interface LocalLayout {
  root: string;
  /** One directory per session: its network record, process records, logs and exit codes. */
  sessions: string;
  /** The bundled emulators and the exit recorder, written by prepare. */
  emulators: string;
  exitRecorder: string;
  script(role: Role): string;
}

export function localLayout(dataDir: string): LocalLayout {
  const root = join(dataDir, 'local');
  const emulators = join(root, 'emulators');
  return {
    root,
    sessions: join(root, 'sessions'),
    emulators,
    exitRecorder: join(emulators, 'exit-recorder.cjs'),
    script: (role) => join(emulators, `${role}.cjs`),
  };
}
