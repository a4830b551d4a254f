/**
 * The HTTP face of the ECS RPC API: `POST /` (and `GET /` for legacy v1 clients). Reads the raw query and
 * body exactly as received, because signatures are computed over them, and hands them to the dispatcher.
 */
import type { FastifyInstance } from 'fastify';
import { AppError } from '../platform/errors.js';
import type { RpcDispatcher } from './rpc-dispatcher.js';
import { parseQueryString, type SignedRequestInput } from './signature/signed-request.js';

/**
 * Largest request body accepted. The ECS SDK sends parameters in the query; Keyward's own client and CLI
 * send them in a signed form body, so that secrets stay out of URLs.
 */
export const MAX_BODY_BYTES = 64 * 1024;

const FORM_TYPE = 'application/x-www-form-urlencoded';

declare module 'fastify' {
  interface FastifyRequest {
    /** The RPC action this request ran, for the access log. */
    rpcAction?: string;
    /** The access key that signed this request, for the access log. */
    rpcAccessKeyId?: string;
  }
}

/** Registers the RPC routes on `app`. */
export function registerRpcRoutes(app: FastifyInstance, dispatcher: RpcDispatcher): void {
  // Bodies are kept as raw bytes: the ACS3 signature covers their SHA-256.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_BODY_BYTES }, (_req, body, done) => {
    done(null, body);
  });

  const handler = async (request: import('fastify').FastifyRequest): Promise<Record<string, unknown>> => {
    const url = request.raw.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    const contentType = (request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
    if (body.length > 0 && contentType !== FORM_TYPE) {
      throw new AppError(
        'InvalidParameter',
        `A request body must be ${FORM_TYPE}; this one is ${JSON.stringify(contentType.slice(0, 64) || '(none)')}.`,
      );
    }
    const input: SignedRequestInput = {
      method: request.method,
      path,
      query: parseQueryString(q === -1 ? '' : url.slice(q + 1)),
      form: body.length > 0 ? parseQueryString(body.toString('utf8')) : [],
      headers: request.headers,
      body,
    };
    // The TCP peer, never X-Forwarded-For: Keyward trusts no proxy (Fastify's trustProxy is off).
    const result = await dispatcher.dispatch(input, request.id, {
      sourceIp: request.ip,
      secureTransport: request.protocol === 'https',
    });
    request.rpcAction = result.action;
    request.rpcAccessKeyId = result.accessKeyId;
    return result.body;
  };
  app.post('/', handler);
  app.get('/', handler);
}
