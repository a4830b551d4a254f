import assert from 'node:assert/strict';
import { test } from 'node:test';
import { requestsPortForwarding } from './ssh-forwarding.js';

test('port forwarding is recognised the way ssh reads its arguments', () => {
  const yes: string[][] = [
    ['-L', '5432:localhost:5432', 'uptime'],
    ['-L5432:localhost:5432'],
    ['-fNL', '8080:localhost:80'],
    ['-R', '9000:localhost:9000'],
    ['-D', '1080'],
    ['-W', 'db:5432'],
    ['-o', 'LocalForward 5432 localhost:5432'],
    ['-oDynamicForward=1080'],
    ['-v', '-p', '2222', '-L', '1:a:1'],
  ];
  const no: string[][] = [
    [],
    ['uptime'],
    ['-t', 'top'],
    ['-o', 'BatchMode=yes', 'echo', '-L'],
    ['-i', '-L'],
    ['-l', 'root', 'ls', '-R'],
    ['--', '-L', '1:a:1'],
    ['-oServerAliveInterval=5'],
  ];
  for (const args of yes) assert.equal(requestsPortForwarding(args), true, args.join(' '));
  for (const args of no) assert.equal(requestsPortForwarding(args), false, args.join(' '));
});
