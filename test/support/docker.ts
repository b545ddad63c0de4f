/**
 * Docker availability for integration tests: run whenever an engine answers; without one, skip loudly,
 * unless EDGEECHO_REQUIRE_DOCKER=1 (set by .ci/run), when the missing engine is a failure.
 */
import Docker from 'dockerode';

export const REQUIRE_DOCKER = process.env.EDGEECHO_REQUIRE_DOCKER === '1';

let cached: Promise<Docker | null> | null = null;

export function dockerOrSkip(suite: string): Promise<Docker | null> {
  cached ??= (async () => {
    const docker = new Docker({ socketPath: process.env.EDGEECHO_DOCKER_SOCKET ?? '/var/run/docker.sock' });
    try {
      await docker.ping();
      return docker;
    } catch (err) {
      if (REQUIRE_DOCKER) {
        throw new Error(`EDGEECHO_REQUIRE_DOCKER=1 but no Docker engine answers: ${(err as Error).message}`);
      }
      return null;
    }
  })();
  return cached.then((docker) => {
    if (!docker) console.warn(`\n!!! SKIPPED ${suite}: no Docker engine answers (set EDGEECHO_REQUIRE_DOCKER=1 to fail instead) !!!\n`);
    return docker;
  });
}
