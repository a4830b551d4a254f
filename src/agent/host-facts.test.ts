import assert from 'node:assert/strict';
import type { NetworkInterfaceInfo } from 'node:os';
import { test } from 'node:test';
import { parseHostFacts } from '../agent-channel/index.js';
import { AgentError } from './agent-error.js';
import {
  collectHostFacts,
  defaultRouteInterface,
  parseOsRelease,
  type HostFactsSources,
} from './host-facts.js';

const ED25519 = `ssh-ed25519 ${Buffer.alloc(51, 3).toString('base64')}`;
const ROUTE_HEADER = 'Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT';

function nic(address: string, family: 'IPv4' | 'IPv6', internal = false): NetworkInterfaceInfo {
  const base = { address, netmask: '', mac: '00:00:00:00:00:00', internal, cidr: null };
  return family === 'IPv4' ? { ...base, family } : { ...base, family, scopeid: 0 };
}

function sources(
  overrides: Partial<HostFactsSources> & { files?: Record<string, string> } = {},
): HostFactsSources {
  const files: Record<string, string> = {
    '/etc/os-release': 'NAME="Debian GNU/Linux"\nVERSION_ID="12"\nVERSION="12 (bookworm)"\n',
    '/proc/net/route': `${ROUTE_HEADER}\neth1\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n`,
    ...overrides.files,
  };
  return {
    hostname: () => 'web-1',
    kernelRelease: () => '6.1.0-18-amd64',
    networkInterfaces: () => ({
      lo: [nic('127.0.0.1', 'IPv4', true), nic('::1', 'IPv6', true)],
      eth0: [nic('10.0.0.5', 'IPv4'), nic('fe80::1', 'IPv6')],
      eth1: [nic('192.168.1.20', 'IPv4'), nic('2001:db8::20', 'IPv6')],
    }),
    readTextFile: (path) => files[path],
    ...overrides,
  };
}

const binder = (hostKeys: string[] = [ED25519], port = 22) => ({ describeSshd: () => ({ port, hostKeys }) });
const OPTIONS = { loginUser: 'root', agentVersion: '0.1.0' };

test('facts from an ordinary host pass the contract parser', async () => {
  const facts = await collectHostFacts(OPTIONS, binder(), sources());
  assert.deepEqual(parseHostFacts(facts), facts);
  assert.equal(facts.osName, 'Debian GNU/Linux');
  assert.equal(facts.osVersion, '12');
  assert.equal(facts.kernel, '6.1.0-18-amd64');
  assert.deepEqual(facts.addresses, ['10.0.0.5', '192.168.1.20', '2001:db8::20']);
  assert.deepEqual(facts.hostKeys, [ED25519]);
});

test("the ssh address is the default route's IPv4 address with sshd's port", async () => {
  const facts = await collectHostFacts(OPTIONS, binder([], 2222), sources());
  assert.equal(facts.sshAddress, '192.168.1.20:2222');
});

test('without a default route the first non-loopback IPv4 address is used', async () => {
  const facts = await collectHostFacts(
    OPTIONS,
    binder(),
    sources({ files: { '/proc/net/route': ROUTE_HEADER } }),
  );
  assert.equal(facts.sshAddress, '10.0.0.5:22');
});

test('an IPv6-only host reports its address in brackets', async () => {
  const facts = await collectHostFacts(
    OPTIONS,
    binder(),
    sources({ networkInterfaces: () => ({ eth0: [nic('2001:db8::7', 'IPv6'), nic('fe80::7', 'IPv6')] }) }),
  );
  assert.equal(facts.sshAddress, '[2001:db8::7]:22');
  assert.deepEqual(facts.addresses, ['2001:db8::7']);
});

test('a configured ssh address wins over discovery', async () => {
  const facts = await collectHostFacts(
    { ...OPTIONS, sshAddress: 'bastion.example.com:2200' },
    binder(),
    sources(),
  );
  assert.equal(facts.sshAddress, 'bastion.example.com:2200');
});

test('a host with only loopback and no configured address cannot report where sshd is', async () => {
  await assert.rejects(
    collectHostFacts(
      OPTIONS,
      binder(),
      sources({ networkInterfaces: () => ({ lo: [nic('127.0.0.1', 'IPv4', true)] }) }),
    ),
    (e) => e instanceof AgentError && e.code === 'Agent.FactsUnavailable',
  );
});

test('a host with many addresses, host keys and odd names is cut to the contract bounds', async () => {
  const many = Object.fromEntries(
    Array.from({ length: 40 }, (_, i) => [`eth${i}`, [nic(`10.1.${i}.1`, 'IPv4')]]),
  );
  const keys = [...Array.from({ length: 10 }, () => ED25519), 'not a key', `${ED25519} root@host comment`];
  const facts = await collectHostFacts(
    OPTIONS,
    binder(keys),
    sources({
      hostname: () => `h\u00e9te-${'x'.repeat(300)}`,
      kernelRelease: () => 'k'.repeat(400),
      networkInterfaces: () => many,
      files: { '/etc/os-release': `NAME="Syst\u00e8me ${'n'.repeat(200)}"\nVERSION="rolling \\"edge\\""\n` },
    }),
  );
  assert.deepEqual(parseHostFacts(facts), facts);
  assert.equal(facts.addresses.length, 32);
  assert.equal(facts.hostKeys.length, 8);
  assert.equal(facts.hostname.length, 253);
  assert.equal(facts.osVersion, 'rolling "edge"');
});

test('a host without os-release still reports valid facts', async () => {
  const facts = await collectHostFacts(OPTIONS, binder(), sources({ readTextFile: () => undefined }));
  assert.equal(facts.osName, 'Linux');
  assert.equal(facts.osVersion, '');
  assert.deepEqual(parseHostFacts(facts), facts);
});

test('host keys with comments are reported as type and base64 only', async () => {
  const facts = await collectHostFacts(OPTIONS, binder([`${ED25519} root@web-1`]), sources());
  assert.deepEqual(facts.hostKeys, [ED25519]);
});

test('an sshd that cannot be described makes the facts unavailable', async () => {
  const failing = {
    describeSshd: () => {
      throw new Error('sshd -T failed');
    },
  };
  await assert.rejects(
    collectHostFacts(OPTIONS, failing, sources()),
    (e) => e instanceof AgentError && e.code === 'Agent.FactsUnavailable',
  );
});

for (const [text, expected] of [
  ['NAME=Fedora\nVERSION_ID=40', { NAME: 'Fedora', VERSION_ID: '40' }],
  ["NAME='Alpine Linux'\n# comment\n\nBAD LINE\n", { NAME: 'Alpine Linux' }],
  ['PRETTY_NAME="a \\$b \\`c\\` \\\\ d"', { PRETTY_NAME: 'a $b `c` \\ d' }],
] as const) {
  test(`os-release text ${JSON.stringify(text).slice(0, 40)} parses to its variables, quotes and escapes undone`, () => {
    assert.deepEqual(parseOsRelease(text), expected);
  });
}

test('the default route interface is read from /proc/net/route', () => {
  const text = `${ROUTE_HEADER}\neth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\nwlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n`;
  assert.equal(defaultRouteInterface(text), 'wlan0');
  assert.equal(defaultRouteInterface(ROUTE_HEADER), undefined);
});
