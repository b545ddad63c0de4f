/**
 * Ports for roles: the kernel picks a free one (bind to port 0 on every interface, read it, close). Free on
 * every interface, so the role can listen on loopback or on EDGEECHO_PUBLISH_HOST. Another process can take it
 * between this close and the role's listen; the role then exits 2 ("port in use") and the create fails with its
 * stderr, as a Docker port clash would.
 */
import { createServer } from 'node:net';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port: 0, host: '0.0.0.0', exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('the kernel assigned no port'))));
    });
  });
}
