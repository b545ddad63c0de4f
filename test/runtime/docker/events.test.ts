import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PassThrough } from 'node:stream';
import { readEvents, toRuntimeEvent } from '../../../src/runtime/docker/events.js';
import { mapDockerError } from '../../../src/runtime/docker/errors.js';

const die = {
  Type: 'container',
  Action: 'die',
  Actor: { ID: 'abc', Attributes: { 'io.edgeecho.session': 's1', 'io.edgeecho.role': 'probe', exitCode: '137' } },
  time: 1700000000,
  timeNano: 1700000000123456789,
};

test('parses a container die event with session, role and exit code', () => {
  assert.equal(toRuntimeEvent(die), { type: 'container', action: 'die', id: 'abc', session: 's1', role: 'probe', exitCode: 137, timeNano: 1700000000123456789 });
  assert.is(toRuntimeEvent({ Type: 'image', Action: 'pull', Actor: { ID: 'x' } }), null);
  assert.is(toRuntimeEvent({ Type: 'container', Action: 'exec_start: sh -c true', Actor: { ID: 'x' }, time: 1 })?.action, 'exec_start');
});

test('reads events split across chunks and throws when the stream ends', async () => {
  const stream = new PassThrough();
  const controller = new AbortController();
  const text = JSON.stringify(die) + '\n' + JSON.stringify({ ...die, Action: 'destroy' }) + '\n';
  stream.write(text.slice(0, 10));
  stream.write(text.slice(10));
  const seen: string[] = [];
  const reading = (async () => {
    for await (const e of readEvents(stream, controller.signal)) {
      seen.push(e.action);
      if (seen.length === 2) stream.end();
    }
  })();
  const err = await reading.then(
    () => null,
    (e: Error) => e,
  );
  assert.equal(seen, ['die', 'destroy']);
  assert.match(err!.message, 'ended');
});

test('abort ends the iteration quietly', async () => {
  const stream = new PassThrough();
  const controller = new AbortController();
  const reading = (async () => {
    for await (const _ of readEvents(stream, controller.signal)) void _;
  })();
  controller.abort();
  await reading;
  assert.ok(stream.destroyed);
});

test('maps engine errors onto the error table', () => {
  assert.is(mapDockerError({ statusCode: 404, json: { message: 'No such image: x' } }, 'create').code, 'NOT_FOUND');
  assert.is(mapDockerError({ statusCode: 409, json: { message: 'Conflict' } }, 'create').code, 'CONFLICT');
  const down = mapDockerError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), 'ping');
  assert.is(down.code, 'RUNTIME_UNAVAILABLE');
  assert.match(down.message, 'EDGEECHO_DOCKER_SOCKET');
  assert.is(mapDockerError({ statusCode: 500, json: { message: 'boom' } }, 'x').code, 'RUNTIME_UNAVAILABLE');
});

test.run();
