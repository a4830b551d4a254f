/**
 * packaging/keyward-server.service, parsed as systemd reads unit files (systemd.syntax(7): sections, `#` and
 * `;` comments, repeated keys, an empty assignment resetting a list, `\` continuing a line), checked for the
 * user, the data directory and every hardening directive docs/server-install.md promises.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from './helpers/repo-root.js';

type Unit = ReadonlyMap<string, ReadonlyMap<string, readonly string[]>>;

/** Every assignment of every section, in order; an empty assignment clears the earlier ones. */
function parseUnit(text: string): Unit {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
    const section = /^\[([A-Za-z]+)\]$/.exec(line);
    if (section?.[1] !== undefined) {
      current = new Map();
      sections.set(section[1], current);
      return;
    }
    const assignment = /^([A-Za-z][A-Za-z0-9]*)\s*=\s*(.*)$/.exec(line);
    if (assignment?.[1] === undefined || assignment[2] === undefined || current === undefined) {
      throw new Error(`line ${i + 1} is neither a section, a comment nor an assignment: ${raw}`);
    }
    const value = assignment[2].trim();
    const values = current.get(assignment[1]) ?? [];
    current.set(assignment[1], value === '' ? [''] : [...values.filter((v) => v !== ''), value]);
  });
  return sections;
}

const unitText = readFileSync(join(repoRoot(), 'packaging', 'keyward-server.service'), 'utf8');
const unit = parseUnit(unitText);
const service = unit.get('Service') ?? new Map<string, readonly string[]>();

/** The effective (last) value of a [Service] key. */
function last(key: string): string | undefined {
  return service.get(key)?.at(-1);
}

/** systemd's boolean spellings (systemd.syntax(7)). */
function isYes(value: string | undefined): boolean {
  return ['yes', 'true', 'on', '1'].includes(value ?? '');
}

test('the server runs as the dedicated user keyward, not a dynamic one, with its data in /var/lib/keyward', () => {
  assert.equal(last('User'), 'keyward');
  assert.equal(isYes(last('DynamicUser')), false);
  assert.match(last('ExecStart') ?? '', /\bkeyward server$/);
  assert.equal(last('StateDirectory'), 'keyward');
  assert.equal(last('StateDirectoryMode'), '0700');
  assert.ok(service.get('Environment')?.includes('KEYWARD_DATA_DIR=/var/lib/keyward'));
  assert.deepEqual(service.get('EnvironmentFile'), ['-/etc/keyward/server.env']);
  assert.equal(last('UMask'), '0077');
  assert.equal(unit.get('Install')?.get('WantedBy')?.at(-1), 'multi-user.target');
});

test('it restarts on failure, has time to drain on SIGTERM and descriptors for 10,000 agent WebSockets', () => {
  assert.equal(last('Restart'), 'on-failure');
  // Draining waits for in-flight requests, each bounded by the server's 30 s request timeout.
  const stop = /^(\d+)s?$/.exec(last('TimeoutStopSec') ?? '');
  assert.ok(
    stop?.[1] !== undefined && Number(stop[1]) > 30,
    `TimeoutStopSec=${last('TimeoutStopSec') ?? ''}`,
  );
  const files = Number(last('LimitNOFILE'));
  assert.ok(files >= 10_000 + 1_024, `LimitNOFILE=${last('LimitNOFILE') ?? ''}`);
});

test('every hardening switch is on', () => {
  for (const key of [
    'NoNewPrivileges',
    'ProtectHome',
    'PrivateTmp',
    'PrivateDevices',
    'ProtectKernelTunables',
    'ProtectKernelModules',
    'ProtectKernelLogs',
    'ProtectControlGroups',
    'ProtectClock',
    'ProtectHostname',
    'RestrictNamespaces',
    'RestrictRealtime',
    'RestrictSUIDSGID',
    'LockPersonality',
  ]) {
    assert.ok(isYes(last(key)), `${key}=${last(key) ?? '(missing)'}`);
  }
  assert.equal(last('ProtectSystem'), 'strict');
  assert.equal(last('SystemCallFilter'), '@system-service');
  assert.equal(last('SystemCallArchitectures'), 'native');
  assert.deepEqual((last('RestrictAddressFamilies') ?? '').split(/\s+/).sort(), [
    'AF_INET',
    'AF_INET6',
    'AF_UNIX',
  ]);
});

test('no capability is kept or granted, and the comment says what a port below 1024 needs', () => {
  assert.deepEqual(service.get('CapabilityBoundingSet'), ['']);
  assert.deepEqual(service.get('AmbientCapabilities'), ['']);
  assert.match(unitText, /^#.*below 1024.*CAP_NET_BIND_SERVICE/m);
});

test("MemoryDenyWriteExecute stays off, with the reason (Node's JIT) in a comment", () => {
  assert.equal(service.has('MemoryDenyWriteExecute'), false);
  assert.match(unitText, /^# - MemoryDenyWriteExecute: .*JIT/m);
});
