/**
 * Mapping between instance rows and the domain's InstanceRecord: JSON columns (addresses, host keys) and
 * the integer flag. Pure; a malformed stored value is our bug (TypeError).
 */
import type { InstanceRow } from '../platform/db/schema.js';
import type { Tag } from '../tags/index.js';
import type { StoredFacts } from './host-facts.js';
import { parseStoredHostKeys } from './host-keys.js';
import type { InstanceId } from './instance-id.js';
import type { InstanceRecord } from './instance-repository.js';

/** The columns that hold host facts. */
export function factColumns(facts: StoredFacts) {
  return {
    hostname: facts.hostname,
    os_name: facts.osName,
    os_version: facts.osVersion,
    kernel: facts.kernel,
    addresses: JSON.stringify(facts.addresses),
    ssh_address: facts.sshAddress,
    host_keys: JSON.stringify(facts.hostKeys),
    agent_version: facts.agentVersion,
    login_user: facts.loginUser,
  };
}

function parseAddresses(json: string): string[] {
  const value: unknown = JSON.parse(json);
  if (!Array.isArray(value) || !value.every((v): v is string => typeof v === 'string')) {
    throw new TypeError('instances.addresses is not a JSON array of strings');
  }
  return value;
}

/** An instance row (with its key pair's name) and its tags as a record. */
export function toRecord(
  row: InstanceRow & { key_pair_name: string | null },
  tags: readonly Tag[],
): InstanceRecord {
  return {
    id: row.id as InstanceId,
    accountId: row.account_id,
    regionId: row.region_id,
    name: row.name,
    hostname: row.hostname,
    osName: row.os_name,
    osVersion: row.os_version,
    kernel: row.kernel,
    addresses: parseAddresses(row.addresses),
    sshAddress: row.ssh_address,
    hostKeys: parseStoredHostKeys(row.host_keys),
    agentVersion: row.agent_version,
    loginUser: row.login_user,
    identityPublicKey: row.identity_public_key,
    status: row.status,
    createdAt: row.created_at,
    lastSeenAt: row.last_seen_at,
    keyPairId: row.key_pair_id,
    keyPairName: row.key_pair_name,
    desiredGeneration: row.desired_generation,
    appliedGeneration: row.applied_generation,
    applyOk: row.apply_ok === null ? null : row.apply_ok === 1,
    applyErrorCode: row.apply_error_code,
    applyErrorMessage: row.apply_error_message,
    tags,
  };
}
