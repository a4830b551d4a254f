/**
 * Client timeouts for the tests. The suite runs on busy 2-core CI machines, where a server answering a burst
 * of RSA key generations, a PostgreSQL round trip or an agent's handshake can take many seconds: a client
 * that gives up first fails a test whose behaviour was right. So every test client (RpcClient, the ECS SDK,
 * raw requests) waits up to `TEST_CLIENT_TIMEOUT_MS`; tests assert outcomes, never durations (timings are
 * the benchmarks' business, bench/).
 */
import { RpcClient, type RpcClientOptions } from '../../src/client/index.js';

/** How long a test client waits for a connection or an answer. */
export const TEST_CLIENT_TIMEOUT_MS = 60_000;

/** An RpcClient with the tests' timeout unless `opts` names another. */
export function testRpcClient(opts: RpcClientOptions): RpcClient {
  return new RpcClient({ timeoutMs: TEST_CLIENT_TIMEOUT_MS, ...opts });
}
