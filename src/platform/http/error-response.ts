/**
 * Turns any error into the ECS error response, in one place. AppErrors keep their code, status and message;
 * framework errors for oversized or unreadable requests map to stable codes; anything else is our bug and
 * becomes InternalError with the detail only in the log.
 */
import type { Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, ERROR_CODES, type ErrorCode } from '../errors.js';

/**
 * The ECS error body: `{ RequestId, HostId, Code, Message, Recommend }`, plus any extra fields the error
 * carries (`AccessDeniedDetail` on `Forbidden.RAM`, in Alibaba Cloud's shape).
 */
export interface ErrorBody {
  readonly [extra: string]: unknown;
  readonly RequestId: string;
  readonly HostId: string;
  readonly Code: ErrorCode;
  readonly Message: string;
  readonly Recommend: string;
}

/** Maps a thrown value to an AppError; `undefined` means "internal", to be logged in full. */
export function toAppError(err: unknown): AppError | undefined {
  if (err instanceof AppError) return err;
  const fe = err as Partial<FastifyError> | undefined;
  switch (fe?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AppError('RequestTooLarge', 'The request body is larger than the server accepts.');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new AppError(
        'InvalidParameter',
        'The request body cannot be read: send parameters in the query.',
      );
    default:
      return undefined;
  }
}

export function errorBody(err: AppError, requestId: string, hostId: string): ErrorBody {
  return {
    // Extra fields first, so they can never overwrite a standard one.
    ...err.bodyFields,
    RequestId: requestId,
    HostId: hostId,
    Code: err.code,
    Message: err.message,
    Recommend: `See ${err.code} in docs/errors.md: ${ERROR_CODES[err.code].summary}`,
  };
}

/** Fastify error handler: logs internal errors with their stack and answers every error as ECS JSON. */
export function handleError(err: unknown, request: FastifyRequest, reply: FastifyReply): void {
  let app = toAppError(err);
  if (app === undefined) {
    request.log.error({ err }, 'internal error');
    app = new AppError(
      'InternalError',
      `The server failed on this request; its log has request ${request.id}.`,
    );
  }
  void reply
    .code(app.status)
    .headers(app.headers)
    .header('content-type', 'application/json; charset=utf-8')
    .send(errorBody(app, request.id, request.hostname));
}

/**
 * Answers requests Node's HTTP parser rejects before any route runs (headers over the size limit,
 * malformed requests, timeouts) with the same ECS JSON error body, then closes the connection.
 */
export function handleClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed || !socket.writable) return;
  const app =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? new AppError(
          'RequestTooLarge',
          'The request line and headers exceed 64 KiB; send large values in a form body.',
        )
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? new AppError('RequestTimeout', 'The request was not received in full within 30 seconds.')
        : new AppError('MalformedRequest', 'The HTTP request cannot be parsed.');
  const body = JSON.stringify(errorBody(app, randomUUID().toUpperCase(), socket.localAddress ?? ''));
  socket.end(
    `HTTP/1.1 ${app.status} ${app.code}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
