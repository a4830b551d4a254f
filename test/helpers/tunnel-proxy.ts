/**
 * A test-only ProxyCommand: `node dist/test/helpers/tunnel-proxy.js INSTANCE_ID LOGIN_USER` with the
 * endpoint and access key in KWT_ENDPOINT, KWT_ACCESS_KEY_ID, KWT_ACCESS_KEY_SECRET. It opens a tunnel
 * with the client library (openSshTunnel) and pipes standard input and output through it, as
 * `keyward proxy` does, so the real OpenSSH client logs on through the agent. A refusal is printed as
 * `tunnel refused: CODE: message` on standard error, exit status 1.
 */
import { RpcClient, RpcError } from '../../src/client/index.js';
import { openSshTunnel } from '../../src/client/tunnel.js';

async function main(): Promise<number> {
  const [instanceId, loginUser] = process.argv.slice(2);
  const env = process.env;
  if (instanceId === undefined || loginUser === undefined) {
    process.stderr.write('usage: tunnel-proxy INSTANCE_ID LOGIN_USER\n');
    return 2;
  }
  const client = new RpcClient({
    endpoint: env['KWT_ENDPOINT'] ?? '',
    accessKeyId: env['KWT_ACCESS_KEY_ID'] ?? '',
    accessKeySecret: env['KWT_ACCESS_KEY_SECRET'] ?? '',
  });
  let stream;
  try {
    stream = await openSshTunnel(client, { regionId: 'local', instanceId, loginUser });
  } catch (err) {
    const e = err as RpcError;
    process.stderr.write(`tunnel refused: ${e instanceof RpcError ? e.code : 'Error'}: ${e.message}\n`);
    return 1;
  } finally {
    client.close();
  }
  const tunnel = stream;
  return new Promise((resolve) => {
    process.stdin.pipe(tunnel);
    tunnel.pipe(process.stdout);
    tunnel.on('error', (err) => {
      process.stderr.write(`tunnel error: ${err.message}\n`);
      resolve(1);
    });
    tunnel.once('close', () => {
      resolve(0);
    });
  });
}

main().then(
  (code) => {
    process.stdout.write('', () => process.exit(code));
  },
  (err: unknown) => {
    process.stderr.write(`tunnel-proxy: ${String(err)}\n`);
    process.exit(1);
  },
);
