/**
 * Part of the agent fleet benchmark: AttachKeyPair to 50 connected agents (the most one call takes,
 * MAX_BINDING_INSTANCE_IDS), timed from the call to its answer, which waits for every agent's ack. Rounds
 * alternate two key pairs, so each round replaces the binding the last one made. Compared with the ECS
 * SDK's default read timeout (3 s): a caller using the SDK unchanged must get its answer within it.
 * The test suite checks the call's outcome (test/instances-bindings.test.ts); how long it takes is
 * measured only here.
 */
import type { RpcClient } from '../src/client/index.js';
import { summarize, type LatencySummary } from './stats.js';

/** The ECS SDK's default read timeout, the budget of one call. */
export const SDK_DEFAULT_READ_TIMEOUT_MS = 3_000;

/** How many instances one AttachKeyPair may name. */
const INSTANCES_PER_CALL = 50;

export interface FleetAttachResult {
  readonly instances: number;
  readonly rounds: number;
  /** Rounds in which every instance answered `applied`. */
  readonly allApplied: number;
  readonly latency: LatencySummary;
}

interface DescribeAnswer {
  readonly Instances: { readonly Instance: ReadonlyArray<{ readonly InstanceId: string }> };
}

interface AttachAnswer {
  readonly Results: { readonly Result: ReadonlyArray<{ readonly Message: string }> };
}

/** Attaches two key pairs in turn to 50 Running instances, `rounds` times; the latency of each call. */
export async function measureFleetAttach(
  client: RpcClient,
  regionId: string,
  rounds: number,
): Promise<FleetAttachResult> {
  const listed = await client.call<DescribeAnswer>('DescribeInstances', {
    RegionId: regionId,
    Status: 'Running',
    PageSize: INSTANCES_PER_CALL,
  });
  const ids = listed.Instances.Instance.map((i) => i.InstanceId);
  if (ids.length === 0) throw new Error('no Running instance to attach to');
  const names = ['fleet-attach-a', 'fleet-attach-b'];
  for (const name of names) await client.call('CreateKeyPair', { RegionId: regionId, KeyPairName: name });
  const samples: number[] = [];
  let allApplied = 0;
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    const res = await client.call<AttachAnswer>('AttachKeyPair', {
      RegionId: regionId,
      KeyPairName: names[r % 2],
      InstanceIds: JSON.stringify(ids),
    });
    samples.push(performance.now() - t0);
    if (res.Results.Result.every((x) => x.Message === 'applied')) allApplied++;
  }
  return { instances: ids.length, rounds, allApplied, latency: summarize(samples) };
}
