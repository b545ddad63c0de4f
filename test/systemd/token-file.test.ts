/**
 * EDGEECHO_TOKEN_FILE set through /etc/edgeecho/edgeecho.env under a real systemd (test/systemd/systemd-box.ts),
 * the token made as edgeecho.env.example says: no token and a wrong token are refused, the right one is served,
 * and a token file readable by others stops the service at start without a restart loop.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createSession, UNIX, watchSession, TCP } from './box-sessions.js';
import { readmeSystemdSteps } from './readme-steps.js';
import { boxPerFile, dockerForBoxesOrSkip, type SystemdBox } from './systemd-box.js';
import { SERVICE } from './unit-state.js';

const docker = await dockerForBoxesOrSkip('systemd/token-file');
const TOKEN_FILE = '/etc/edgeecho/token';
const WRONG_TOKEN_FILE = '/root/wrong-token';


/** The commands edgeecho.env.example gives for creating the token file, as written there. */
async function exampleTokenCommands(b: SystemdBox): Promise<string> {
  const example = await b.sh(`cat ${b.dir}/systemd/edgeecho.env.example`);
  const lines = example.split('\n').filter((l) => /^#\s+(create it with:)?\s*(install|openssl) /.test(l)).map((l) => l.replace(/^#\s+(create it with:)?\s*/, '').replace(/\s*&&\s*$/, ''));
  assert.is(lines.length, 2, `expected the install and openssl lines in edgeecho.env.example, got ${JSON.stringify(lines)}`);
  return lines.join(' && ');
}

if (docker) {
  const box = boxPerFile(test, docker, { area: 'token', env: { EDGEECHO_TOKEN_FILE: TOKEN_FILE } });

  test('a token file made as edgeecho.env.example says: no token and a wrong token are refused, the right one is served', async () => {
    const b = await box();
    await b.sh(await exampleTokenCommands(b));
    await b.sh(`openssl rand -hex 32 > ${WRONG_TOKEN_FILE}`);
    await b.sh(readmeSystemdSteps().enable);
    assert.is((await b.show(SERVICE, ['ActiveState'])).ActiveState, 'active');

    for (const via of [UNIX, TCP]) {
      const none = await b.edgeecho(['session', 'ls', '--json', ...via]);
      assert.is(none.code, 1, none.stdout);
      assert.match(none.stderr, 'UNAUTHENTICATED');
      const wrong = await b.edgeecho(['session', 'ls', '--json', '--token-file', WRONG_TOKEN_FILE, ...via]);
      assert.is(wrong.code, 1, wrong.stdout);
      assert.match(wrong.stderr, 'UNAUTHENTICATED');
    }
    const right = ['--token-file', TOKEN_FILE];
    const ls = await b.edgeecho(['session', 'ls', '--json', ...right, ...TCP]);
    assert.is(ls.code, 0, ls.stderr);
    const id = await createSession(b, [...right, ...UNIX], ['--plain', '--count', '200']);
    assert.is((await watchSession(b, [...right, ...UNIX], id)).state, 'completed');
  });

  test('a token file readable by others: the service fails at start with the reason, and systemd does not retry it', async () => {
    const b = await box();
    await b.sh(`chmod o+r ${TOKEN_FILE}`);
    const restart = await b.exec(`systemctl restart ${SERVICE}`);
    assert.is.not(restart.code, 0, 'the start job fails');
    const state = await b.show(SERVICE, ['ActiveState', 'Result', 'ExecMainStatus', 'NRestarts']);
    assert.equal(state, { ActiveState: 'failed', Result: 'exit-code', ExecMainStatus: '2', NRestarts: '0' });
    assert.match(await b.sh(`journalctl --no-pager -o cat -u ${SERVICE}`), /token file \/etc\/edgeecho\/token \(EDGEECHO_TOKEN_FILE\) has mode 0644; expected no access for others/);
    await b.sh(`chmod o-r ${TOKEN_FILE} && systemctl reset-failed ${SERVICE} && systemctl start ${SERVICE}`);
    const ls = await b.edgeecho(['session', 'ls', '--json', '--token-file', TOKEN_FILE, ...UNIX]);
    assert.is(ls.code, 0, ls.stderr);
  });
}

test.run();
