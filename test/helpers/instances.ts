/** Waiting on instances through the API, for the tests and benchmarks that start an agent. */
import { setTimeout as sleep } from 'node:timers/promises';
import type { RpcClient } from '../../src/client/index.js';

/**
 * Polls DescribeInstances until an instance is Running and returns its id; after `timeoutMs` throws
 * "the agent never came up", followed by `context()` (the agent's log, say).
 */
export async function waitForRunningInstance(
  rpc: RpcClient,
  opts: { readonly timeoutMs?: number; readonly pollMs?: number; readonly context?: () => string } = {},
): Promise<string> {
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  for (;;) {
    const res = await rpc.call<{ Instances: { Instance: Array<{ InstanceId: string; Status: string }> } }>(
      'DescribeInstances',
      { RegionId: 'local' },
    );
    const running = res.Instances.Instance.find((i) => i.Status === 'Running');
    if (running !== undefined) return running.InstanceId;
    if (Date.now() > deadline) throw new Error(`the agent never came up:\n${opts.context?.() ?? ''}`);
    await sleep(opts.pollMs ?? 50);
  }
}
