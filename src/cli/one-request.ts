/** One request to the daemon and its answer printed: the shape of `edgeecho resources` and `edgeecho metrics`. */
import { connect } from '../client/index.js';
import { EdgeechoError } from '../../protocol/errors.js';
import { connectionOptions, type CliIo, type ConnectionFlagValues } from './args.js';
import { renderError } from './live-view.js';
import { CLI_CLIENT_NAME } from './session.js';

/** Exit 0 once `print` wrote the answer; 1 with the error on stderr when connecting, the request or `print` failed. */
export async function requestOnce(values: ConnectionFlagValues, io: CliIo, op: string, args: Record<string, unknown>, print: (answer: unknown) => string): Promise<number> {
  const options = connectionOptions(values, io.env);
  let client;
  try {
    client = await connect({ ...options, client: CLI_CLIENT_NAME });
    io.stdout.write(print(await client.request(op, args)));
    return 0;
  } catch (err) {
    io.stderr.write(renderError(EdgeechoError.from(err)) + '\n');
    return 1;
  } finally {
    await client?.close();
  }
}
