/**
 * A test-only gateway relay, run inside a network namespace: `node dist/test/helpers/netns-relay.js ADDRESS
 * PORT UNIX_SOCKET` listens on ADDRESS:PORT and forwards each connection over the unix socket (unix
 * sockets are not namespaced) to the test process, which forwards it to the server's 127.0.0.1 port. This
 * is how an agent in a namespace of its own reaches a server that listens only on 127.0.0.1.
 */
import { connect, createServer } from 'node:net';

const [address, port, socketPath] = process.argv.slice(2);
if (address === undefined || port === undefined || socketPath === undefined) {
  process.stderr.write('usage: netns-relay ADDRESS PORT UNIX_SOCKET\n');
  process.exit(2);
}
const server = createServer((client) => {
  const upstream = connect(socketPath);
  client.pipe(upstream).pipe(client);
  const drop = (): void => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', drop).on('close', drop);
  upstream.on('error', drop).on('close', drop);
});
server.listen(Number(port), address, () => {
  process.stdout.write('listening\n');
});
process.on('SIGTERM', () => {
  server.close();
  process.exit(0);
});
