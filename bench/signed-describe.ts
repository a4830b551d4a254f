/**
 * A signed DescribeKeyPairs request prepared for the HTTP load generator (http-load.ts): signed with ACS3
 * (src/rpc/signature/acs3.ts, what RpcClient and the official SDK send) before its clock starts, so the
 * client's signing cost is not charged to the server. Shared by the benchmark sections that time it.
 */
import { randomUUID } from 'node:crypto';
import { DEFAULT_API_VERSION } from '../src/client/index.js';
import { signAcs3 } from '../src/rpc/signature/acs3.js';
import type { PreparedRequest } from './http-load.js';

/** The access key and region a request is signed for. */
export interface SigningCredentials {
  readonly accessKeyId: string;
  readonly accessKeySecret: string;
  readonly regionId: string;
}

/** The parts of a DescribeKeyPairs answer the benchmarks check. */
export interface DescribeKeyPairsAnswer {
  readonly TotalCount?: unknown;
  readonly KeyPairs?: { readonly KeyPair?: unknown };
}

/** `POST /?…DescribeKeyPairs…` for page `page` of `pageSize`, signed now with a fresh nonce. */
export function signedDescribe(
  creds: SigningCredentials,
  host: string,
  page: number,
  pageSize: number,
): PreparedRequest {
  const signed = signAcs3({
    host,
    action: 'DescribeKeyPairs',
    version: DEFAULT_API_VERSION,
    query: [
      ['RegionId', creds.regionId],
      ['PageNumber', String(page)],
      ['PageSize', String(pageSize)],
    ],
    accessKeyId: creds.accessKeyId,
    accessKeySecret: creds.accessKeySecret,
    dateMs: Date.now(),
    nonce: randomUUID().replaceAll('-', ''),
  });
  return {
    method: 'POST',
    path: `/?${signed.queryString}`,
    headers: { ...signed.headers, accept: 'application/json', 'content-length': '0' },
  };
}
