/**
 * The edgeecho client library: `import { connect } from 'edgeecho/client'`.
 *
 *   const client = await connect({ host: '127.0.0.1', port: 7411, token });
 *   const info = await client.request('ping');
 *   const call = client.call('session.create', { ... });
 *   for await (const status of call.status) console.log(status.step);
 *   const session = await call.result;
 *   await client.close();
 *
 *   for await (const frame of consume(session.location)) use(frame.payload);   // the stream itself
 *
 * Every failure is an EdgeechoError whose `code` is one of ERROR_CODES (the daemon's wire code, or
 * CONNECTION_CLOSED / TIMEOUT / UNSUPPORTED_PROTOCOL raised here, DATA_LOSS by consume).
 */
export { connect, Client, targetOf, DEFAULT_KEEPALIVE_MS, DEFAULT_CLIENT_MAX_FRAME_BYTES, DEFAULT_CLIENT_NAME } from './client.js';
export type { ConnectOptions, RequestOptions, Timers } from './client.js';
export { Call } from './call.js';
export { consume, parseLocation, StreamConsumer, StreamFrame, DEFAULT_STREAM_MAX_FRAME_BYTES } from './consume.js';
export type { ConsumeOptions, ConsumeSummary, StreamLocation } from './consume.js';
export { createNetSocket, describeTarget, DEFAULT_CONNECT_TIMEOUT_MS } from './transport.js';
export { createTlsSocketFactory } from './tls.js';
export type { ClientTlsOptions } from './tls.js';
export type { ConnectTarget, CreateSocket, SocketOptions } from './transport.js';
export { EdgeechoError, ERROR_CODES, isErrorCode } from '../../protocol/errors.js';
export type { ErrorCode, WireError } from '../../protocol/errors.js';
export { chooseProtocol } from '../../protocol/messages.js';
export type { Greeting, StatusFrame, EventFrame, RequestId } from '../../protocol/messages.js';
