/**
 * The agent gateway's HTTP side: `POST /agent/v1/enroll`. The body (JSON, at most
 * MAX_AGENT_MESSAGE_BYTES) is read raw in its own Fastify scope and handed to the enrollment service, which
 * parses it with the channel contract's strict parser (enrollment-service.ts). Errors take the one error path of the server, so
 * an agent gets the same ECS JSON error body as an API client (`InvalidEnrollmentToken`, 403).
 */
import type { FastifyInstance } from 'fastify';
import { ENROLL_PATH, MAX_AGENT_MESSAGE_BYTES, type EnrollResponse } from '../../agent-channel/index.js';
import type { EnrollmentService } from '../enrollment-service.js';

/** Registers the enrollment route on `app`, in a scope with its own body parser. */
export function registerEnrollRoute(app: FastifyInstance, service: EnrollmentService): void {
  void app.register((scope, _opts, done) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser(
      '*',
      { parseAs: 'buffer', bodyLimit: MAX_AGENT_MESSAGE_BYTES },
      (_req, body, parsed) => {
        parsed(null, body);
      },
    );
    scope.post(ENROLL_PATH, async (request, reply): Promise<EnrollResponse> => {
      const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      const response = await service.enroll(body, request.ip);
      void reply.header('cache-control', 'no-store');
      return response;
    });
    done();
  });
}
