/**
 * The floor of the DescribeKeyPairs benchmark (run.ts section 2): the least a server must do to answer a
 * signed DescribeKeyPairs page, in a process of its own forked by run.ts with an IPC channel.
 *
 * A bare node:http server on 127.0.0.1 that, for each request, computes one HMAC-SHA256 over the request's
 * method, URL and signed headers (what checking an ACS3 signature costs), reads the requested page of key
 * pairs with raw better-sqlite3 (one prepared statement: the page with its tags and the window count the
 * server's repository also uses) and serialises it to the server's JSON shape. The rows come from an online
 * copy (SQLite's backup API) of the server's own database taken when the floor starts, so both read the
 * same 50 rows. No framework, no authorization, no audit record, no nonce store: whatever the real server
 * spends beyond this is the price of those, of Fastify, and of Keyward's own code.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';

/** The command that starts the floor. */
export interface FloorStartRequest {
  readonly kind: 'start';
  /** The server's database file, copied (online backup) before the floor listens. */
  readonly sourceFile: string;
  readonly accountId: string;
  readonly regionId: string;
  /** Key of the HMAC computed per request (the access key secret). */
  readonly hmacKey: string;
}

export type FloorMessage =
  | { readonly kind: 'ready'; readonly port: number; readonly rows: number }
  | { readonly kind: 'error'; readonly message: string };

/** Type guard for the start command received over IPC. */
export function isFloorStartRequest(msg: unknown): msg is FloorStartRequest {
  if (typeof msg !== 'object' || msg === null) return false;
  const m = msg as Record<string, unknown>;
  return (
    m['kind'] === 'start' &&
    typeof m['sourceFile'] === 'string' &&
    typeof m['accountId'] === 'string' &&
    typeof m['regionId'] === 'string' &&
    typeof m['hmacKey'] === 'string'
  );
}

/** Type guard for a message from the floor child. */
export function isFloorMessage(msg: unknown): msg is FloorMessage {
  if (typeof msg !== 'object' || msg === null) return false;
  const kind = (msg as Record<string, unknown>)['kind'];
  return kind === 'ready' || kind === 'error';
}

/** The page query of the server's KeyPairRepository.find, written out. */
const PAGE_SQL = `
  SELECT p.*, t.tag_key, t.tag_value FROM (
    SELECT kp.id, kp.name, kp.fingerprint_md5, kp.resource_group_id, kp.created_at, count(*) OVER () AS total
    FROM key_pairs AS kp WHERE kp.account_id = ? AND kp.region_id = ?
    ORDER BY kp.created_at, kp.name LIMIT ? OFFSET ?
  ) AS p LEFT JOIN key_pair_tags AS t ON t.key_pair_id = p.id
  ORDER BY p.created_at, p.name`;

interface PageRow {
  readonly id: string;
  readonly name: string;
  readonly fingerprint_md5: string;
  readonly resource_group_id: string | null;
  readonly created_at: string;
  readonly total: number;
  readonly tag_key: string | null;
  readonly tag_value: string | null;
}

interface FloorView {
  KeyPairName: string;
  KeyPairFingerPrint: string;
  CreationTime: string;
  ResourceGroupId: string;
  Tags: { Tag: Array<{ TagKey: string; TagValue: string }> };
}

async function startFloor(
  req: FloorStartRequest,
): Promise<{ port: number; rows: number; close: () => void }> {
  const dir = mkdtempSync(join(os.tmpdir(), 'keyward-floor-'));
  const copy = join(dir, 'copy.sqlite');
  const source = new BetterSqlite3(req.sourceFile, { readonly: true, fileMustExist: true });
  try {
    await source.backup(copy);
  } finally {
    source.close();
  }
  const db = new BetterSqlite3(copy, { readonly: true });
  const page = db.prepare<[string, string, number, number], PageRow>(PAGE_SQL);
  const rows = page.all(req.accountId, req.regionId, 1_000_000, 0).length;
  const server = http.createServer({ keepAlive: true }, (request, response) => {
    const url = request.url ?? '/';
    // One HMAC-SHA256, over about what an ACS3 canonical request holds.
    createHmac('sha256', req.hmacKey)
      .update(
        `${request.method ?? ''}\n${url}\n${String(request.headers['x-acs-date'])}\n` +
          `${String(request.headers['x-acs-signature-nonce'])}\n${String(request.headers['authorization'])}`,
      )
      .digest('hex');
    const query = new URLSearchParams(url.slice(url.indexOf('?') + 1));
    const pageNumber = Number(query.get('PageNumber') ?? '1');
    const pageSize = Number(query.get('PageSize') ?? '10');
    const found = page.all(req.accountId, req.regionId, pageSize, (pageNumber - 1) * pageSize);
    const items: FloorView[] = [];
    let lastId: string | undefined;
    for (const r of found) {
      if (r.id !== lastId) {
        lastId = r.id;
        items.push({
          KeyPairName: r.name,
          KeyPairFingerPrint: r.fingerprint_md5,
          CreationTime: `${r.created_at.slice(0, 16)}Z`,
          ResourceGroupId: r.resource_group_id ?? '',
          Tags: { Tag: [] },
        });
      }
      if (r.tag_key !== null) items.at(-1)?.Tags.Tag.push({ TagKey: r.tag_key, TagValue: r.tag_value ?? '' });
    }
    const body = JSON.stringify({
      RequestId: randomUUID().toUpperCase(),
      TotalCount: found[0]?.total ?? 0,
      PageNumber: pageNumber,
      PageSize: pageSize,
      KeyPairs: { KeyPair: items },
    });
    response.writeHead(200, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
    });
    response.end(body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the floor has no TCP address');
  return {
    port: address.port,
    rows,
    close: () => {
      server.closeAllConnections();
      server.close();
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function send(msg: FloorMessage): void {
  process.send?.(msg);
}

// Only act as the child when forked with an IPC channel (importing this module for its types does nothing).
if (process.send !== undefined && process.argv.includes('--describe-floor-child')) {
  let close: (() => void) | undefined;
  process.on('message', (msg: unknown) => {
    if (!isFloorStartRequest(msg) || close !== undefined) {
      send({ kind: 'error', message: `unexpected message: ${JSON.stringify(msg).slice(0, 200)}` });
      return;
    }
    startFloor(msg).then(
      (floor) => {
        close = floor.close;
        send({ kind: 'ready', port: floor.port, rows: floor.rows });
      },
      (err: unknown) => {
        send({ kind: 'error', message: err instanceof Error ? err.message : String(err) });
      },
    );
  });
  // Exit with the parent: run.ts disconnects (or dies) when it is done; the copy is removed first.
  process.on('disconnect', () => {
    close?.();
    process.exit(0);
  });
}
