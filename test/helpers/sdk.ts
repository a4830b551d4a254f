/**
 * The official Alibaba Cloud ECS SDK (`@alicloud/ecs20140526` on `@alicloud/openapi-core`), unmodified,
 * pointed at a test server, and assertions on the errors it and our RpcClient throw.
 */
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import EcsModule from '@alicloud/ecs20140526';
import * as $OpenApi from '@alicloud/openapi-core';
import { RpcError } from '../../src/client/index.js';
import { TEST_CLIENT_TIMEOUT_MS } from './timeouts.js';

/** The SDK's client class (a CommonJS default export, hence `.default` under NodeNext). */
export const EcsClient = EcsModule.default;
export type EcsClient = InstanceType<typeof EcsClient>;

export interface SdkOptions {
  /** `v2` selects the legacy v1 (HMAC-SHA1 query) signature; default is ACS3-HMAC-SHA256. */
  readonly signatureAlgorithm?: 'v2';
  readonly protocol?: 'http' | 'https';
  /** PEM of a CA to trust for https. */
  readonly ca?: string;
  readonly regionId?: string;
  /** The SDK's read timeout in ms (default TEST_CLIENT_TIMEOUT_MS: the SDK's own 3 s fails on a busy machine). */
  readonly readTimeout?: number;
}

/** An SDK client configured as the ECS-API.md contract says. */
export function sdkClient(
  hostPort: string,
  keys: { accessKeyId: string; accessKeySecret: string },
  opts: SdkOptions = {},
): EcsClient {
  return new EcsClient(
    new $OpenApi.$OpenApiUtil.Config({
      accessKeyId: keys.accessKeyId,
      accessKeySecret: keys.accessKeySecret,
      endpoint: hostPort,
      protocol: opts.protocol ?? 'http',
      regionId: opts.regionId ?? 'local',
      ...(opts.signatureAlgorithm !== undefined && { signatureAlgorithm: opts.signatureAlgorithm }),
      ...(opts.ca !== undefined && { ca: opts.ca }),
      // The SDK's own defaults (3 s read, 5 s connect) fail on a loaded CI machine: helpers/timeouts.ts.
      readTimeout: opts.readTimeout ?? TEST_CLIENT_TIMEOUT_MS,
      connectTimeout: TEST_CLIENT_TIMEOUT_MS,
    }),
  );
}

/** The raw JSON answer of a generic `callApi` (no SDK model mapping). */
export interface RawAnswer {
  readonly statusCode: number;
  readonly headers: Record<string, string>;
  readonly body: Record<string, unknown>;
}

/**
 * Calls any action through the SDK's generic `callApi`, as an RPC-style POST with parameters in the query,
 * and returns the JSON body exactly as received.
 */
export async function sdkCallApi(
  client: EcsClient,
  action: string,
  query: Record<string, string | number | boolean>,
  version = '2014-05-26',
): Promise<RawAnswer> {
  const params = new $OpenApi.$OpenApiUtil.Params({
    action,
    version,
    protocol: 'HTTPS',
    pathname: '/',
    method: 'POST',
    authType: 'AK',
    style: 'RPC',
    reqBodyType: 'formData',
    bodyType: 'json',
  });
  const request = new $OpenApi.$OpenApiUtil.OpenApiRequest({ query: $OpenApi.OpenApiUtil.query(query) });
  // RuntimeOptions lives in @darabonba/typescript, not a dependency of ours; the SDK only reads optional
  // fields from it, so an empty object is a valid one.
  // eslint-disable-next-line @typescript-eslint/no-unsafe-class-instance-assignment
  const runtime = {} as Parameters<EcsClient['callApi']>[2];
  const answer = (await client.callApi(params, request, runtime)) as unknown as RawAnswer;
  return answer;
}

/** The ECS error body every error answer must carry. */
export function assertErrorBody(data: unknown, code: string): void {
  assert.ok(typeof data === 'object' && data !== null, `error body is not a JSON object: ${String(data)}`);
  const body = data as Record<string, unknown>;
  for (const field of ['RequestId', 'HostId', 'Code', 'Message', 'Recommend']) {
    assert.equal(typeof body[field], 'string', `error body field ${field}: ${JSON.stringify(body)}`);
  }
  assert.equal(body['Code'], code);
  assert.notEqual(body['RequestId'], '');
  assert.notEqual(body['Message'], '');
}

interface SdkErrorShape {
  readonly code: string;
  readonly statusCode: number;
  readonly data: unknown;
}

/** Awaits an SDK call that must fail with `code` and HTTP `status`; returns the SDK's error. */
export async function expectSdkError(
  promise: Promise<unknown>,
  code: string,
  status: number,
): Promise<SdkErrorShape> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught !== undefined, `expected the SDK call to fail with ${code}, but it succeeded`);
  const err = caught as Partial<SdkErrorShape> & { message?: string };
  assert.equal(err.code, code, `SDK error: ${err.message ?? inspect(caught)}`);
  assert.equal(err.statusCode, status, `HTTP status of ${code}`);
  assertErrorBody(err.data, code);
  return err as SdkErrorShape;
}

/** Awaits an RpcClient call that must fail with `code` and HTTP `status`; returns the RpcError. */
export async function expectRpcError(
  promise: Promise<unknown>,
  code: string,
  status: number,
): Promise<RpcError> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught !== undefined, `expected the call to fail with ${code}, but it succeeded`);
  assert.ok(caught instanceof RpcError, `not an RpcError: ${inspect(caught)}`);
  assert.equal(caught.code, code, `RpcError: ${caught.message}`);
  assert.equal(caught.status, status, `HTTP status of ${code}`);
  assertErrorBody(caught.data, code);
  return caught;
}
