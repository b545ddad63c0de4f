/**
 * `edgeecho daemon`: load config, build the ops, listen, and shut down gracefully on SIGTERM/SIGINT.
 * Returns the process exit code instead of exiting, so main.ts and tests decide what happens next.
 */
import type { Logger } from 'pino';
import { EdgeechoError } from '../../protocol/errors.js';
import { loadConfig } from '../config.js';
import { createLogger } from '../log.js';
import { Daemon } from '../daemon/daemon.js';
import type { Peer } from '../daemon/listen.js';
import { planListeners, type ListenerPlan } from '../daemon/listeners-from-config.js';
import { createSystemdNotifier } from '../daemon/systemd-notify.js';
import { installTestHooks } from '../daemon/test-hooks.js';
import { createOps } from '../compose.js';
import { assertExposureAllowed } from '../daemon/auth.js';
import { parseMetricsAddress, serveMetrics, type MetricsAddress, type MetricsServer } from '../metrics/metrics-http.js';

export const EXIT_OK = 0;
/** Bad configuration or flags: nothing was started. */
export const EXIT_CONFIG = 2;
/** Could not start (listen failed, ops failed to initialise). */
export const EXIT_START = 1;

export interface RunDaemonOptions {
  env?: NodeJS.ProcessEnv;
  /** Resolves to stop the daemon instead of a signal (tests). */
  stop?: Promise<unknown>;
  /** Builds the ops instead of the full composition root (tests that drive no runtime). */
  createOps?: typeof createOps;
  /** Called once listening, with where. */
  onListening?(addresses: Awaited<ReturnType<Daemon['listen']>>): void;
}

export async function runDaemon(argv: string[], options: RunDaemonOptions = {}): Promise<number> {
  let config;
  let rest: string[];
  try {
    ({ config, rest } = loadConfig({ env: options.env ?? process.env, argv }));
  } catch (err) {
    process.stderr.write(`edgeecho daemon: ${(err as Error).message}\n`);
    return EXIT_CONFIG;
  }
  if (rest.length > 0) {
    process.stderr.write(`edgeecho daemon: unknown argument${rest.length > 1 ? 's' : ''} ${rest.join(' ')}; \`edgeecho config\` lists the settings and their flags\n`);
    return EXIT_CONFIG;
  }
  const log = createLogger(config.logLevel as Parameters<typeof createLogger>[0]);
  // Token, TLS and systemd sockets before anything heavy: an unsafe or broken exposure stops here.
  let plan: ListenerPlan;
  let metricsAddress: MetricsAddress | null;
  try {
    plan = planListeners(config, { env: options.env ?? process.env, log });
    metricsAddress = parseMetricsAddress(config.metrics);
    if (metricsAddress) assertExposureAllowed(metricsAddress.host, plan.auth !== null, 'EDGEECHO_METRICS');
  } catch (err) {
    process.stderr.write(`edgeecho daemon: ${(err as Error).message}\n`);
    return EXIT_CONFIG;
  }
  const notifier = createSystemdNotifier({ env: options.env ?? process.env, log });
  let ops;
  try {
    ops = await (options.createOps ?? createOps)(config, log);
  } catch (err) {
    log.fatal({ err }, 'cannot initialise ops');
    return EXIT_START;
  }
  let daemon: Daemon;
  let metricsServer: MetricsServer | null = null;
  try {
    const auth = plan.auth;
    daemon = new Daemon({
      config,
      registry: ops.registry,
      log,
      listeners: plan.listeners,
      ...(ops.runtime ? { runtime: ops.runtime } : {}),
      ...(ops.instance ? { instance: ops.instance } : {}),
      ...(auth ? { authenticate: (token: string | undefined, peer: Peer) => auth.authenticate(token, peer) } : {}),
    });
    if (ops.metrics) {
      ops.metrics.watchDaemon(daemon);
      if (metricsAddress) metricsServer = await serveMetrics({ address: metricsAddress, metrics: ops.metrics, auth: plan.auth, log });
    }
    const addresses = await daemon.listen();
    options.onListening?.(addresses);
    await notifier.ready(`listening on ${addresses.listeners.map((l) => ('path' in l.address ? l.address.path : `${l.address.host}:${l.address.port}`)).join(', ')}`);
  } catch (err) {
    log.fatal({ err: describeError(err) }, 'cannot start the daemon');
    await metricsServer?.close();
    await ops.close().catch(() => undefined);
    return err instanceof EdgeechoError && err.code === 'BAD_REQUEST' ? EXIT_CONFIG : EXIT_START;
  }
  installTestHooks(options.env ?? process.env, log);
  const stopWatchdog = notifier.startWatchdog();
  const { signal, dispose } = await waitForStop(log, options.stop);
  log.info({ signal }, 'stopping');
  await notifier.stopping('draining connections');
  stopWatchdog();
  await daemon.shutdown();
  await metricsServer?.close();
  dispose();
  await ops.close().catch((err) => log.error({ err }, 'closing ops failed'));
  log.flush?.();
  return EXIT_OK;
}

/** Resolves on the first SIGTERM/SIGINT; a second one while shutting down exits at once. */
function waitForStop(log: Logger, stop?: Promise<unknown>): Promise<{ signal: string; dispose(): void }> {
  return new Promise((done) => {
    const dispose = (): void => {
      process.off('SIGTERM', forced);
      process.off('SIGINT', forced);
    };
    const resolve = (signal: string): void => done({ signal, dispose });
    const onSignal = (signal: NodeJS.Signals): void => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      process.once('SIGTERM', forced);
      process.once('SIGINT', forced);
      resolve(signal);
    };
    const forced = (signal: NodeJS.Signals): void => {
      log.warn({ signal }, 'second signal during shutdown: exiting now');
      process.exit(130);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    void stop?.then(() => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      resolve('stop');
    });
  });
}

function describeError(err: unknown): unknown {
  return err instanceof EdgeechoError ? { code: err.code, message: err.message } : err;
}
