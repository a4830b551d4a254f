import assert from 'node:assert/strict';
import { generateKeyPairSync, verify } from 'node:crypto';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { OneKeyAgent } from './ssh-agent-server.js';

function str(b: Buffer | string): Buffer {
  const data = Buffer.from(b);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  return Buffer.concat([len, data]);
}

function message(type: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  return str(Buffer.concat([Buffer.from([type]), payload]));
}

/** Sends `requests` in order on one connection; resolves with each answer's type and payload. */
function ask(path: string, requests: Buffer[]): Promise<Array<{ type: number; payload: Buffer }>> {
  return new Promise((resolve, reject) => {
    const s = connect({ path });
    let buf = Buffer.alloc(0);
    const answers: Array<{ type: number; payload: Buffer }> = [];
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
        const n = buf.readUInt32BE(0);
        answers.push({ type: buf[4] ?? 0, payload: buf.subarray(5, 4 + n) });
        buf = buf.subarray(4 + n);
      }
      if (answers.length === requests.length) {
        s.end();
        resolve(answers);
      }
    });
    s.on('error', reject);
    for (const r of requests) s.write(r);
  });
}

function logonData(user: string, blob: Buffer): Buffer {
  return Buffer.concat([
    str(Buffer.alloc(32, 7)),
    Buffer.from([50]),
    str(user),
    str('ssh-connection'),
    str('publickey'),
    Buffer.from([1]),
    str('ssh-ed25519'),
    str(blob),
  ]);
}

test('the agent holds its key until opened, signs only logons for its key and user, then lets go', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kw-agent-test-'));
  try {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const agent = new OneKeyAgent({ privateKey, comment: 'test', user: 'deploy' });
    const path = join(dir, 'agent.sock');
    agent.listen(path);
    const identities = ask(path, [message(11)]);
    let answered = false;
    void identities.then(() => (answered = true));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(answered, false, 'no identities before the grant is installed');
    agent.open();
    const [list] = await identities;
    assert.equal(list?.type, 12);
    assert.ok(list?.payload.includes(agent.blob));

    const sign = (data: Buffer, blob = agent.blob): Buffer =>
      message(13, Buffer.concat([str(blob), str(data), Buffer.alloc(4)]));
    const refused = await ask(path, [
      sign(Buffer.from('not a logon')),
      sign(logonData('root', agent.blob)),
      sign(logonData('deploy', agent.blob), Buffer.from('other key')),
      message(27, str('session-bind@openssh.com')),
      message(17),
    ]);
    assert.deepEqual(
      refused.map((a) => a.type),
      [5, 5, 5, 5, 5],
    );
    const data = logonData('deploy', agent.blob);
    const [signed] = await ask(path, [sign(data)]);
    assert.equal(signed?.type, 14);
    const sigBlob = signed?.payload.subarray(4) ?? Buffer.alloc(0);
    const raw = sigBlob.subarray(4 + 11 + 4);
    assert.ok(verify(null, data, publicKey, raw));
    await agent.finished;
    assert.equal(existsSync(path), false, 'the socket is removed once ssh hung up after signing');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
