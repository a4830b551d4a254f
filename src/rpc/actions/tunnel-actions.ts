/**
 * StartSshTunnel (version 2014-05-26, as the tunnel contract fixes it): a ticket for the tunnel WebSocket
 * (`/tunnel/v1/connect`), where SSH's own bytes reach the instance's sshd through its agent. Authorized
 * exactly like a logon (SendSSHPublicKey, StartTerminalSession): `ecs-workbench:LoginInstance` on the
 * instance's workbench resource, with the OS user as `ecs-workbench:LoginUser` and the instance's tags.
 * The ticket is single-use, valid 30 s, and bound to the caller, the instance and the OS user.
 */
import { randomUUID } from 'node:crypto';
import { principalName } from '../../identity/index.js';
import { parseOsUser } from '../../logon/index.js';
import { TUNNEL_PATH, TUNNEL_SESSION_PREFIX } from '../../tunnels/tunnel-contract.js';
import { ECS_API_VERSION } from '../api-versions.js';
import { defineAction, readRegionId, type RpcAction } from '../rpc-action.js';
import {
  LOGIN_INSTANCE_ACTION,
  LOGON_KEYS,
  logonCheck,
  signingAccessKey,
  type LogonActionDeps,
} from './logon-actions.js';

const DEFAULT_OS_USER = 'root';

export interface TunnelActionDeps extends LogonActionDeps {
  /** This server's `--public-url`: TunnelUrl is absolute when set, else the path alone. */
  readonly publicUrl?: string;
}

export function tunnelActions(deps: TunnelActionDeps): RpcAction[] {
  const tunnelUrl =
    deps.publicUrl === undefined ? TUNNEL_PATH : `${deps.publicUrl.replace(/^http/, 'ws')}${TUNNEL_PATH}`;
  return [
    defineAction({
      name: 'StartSshTunnel',
      version: ECS_API_VERSION,
      permissions: [{ action: LOGIN_INSTANCE_ACTION, conditionKeys: LOGON_KEYS }],
      read(params) {
        const regionId = readRegionId(params, deps.regions);
        const instanceId = params.requiredString('InstanceId', 64);
        const osUser = params.optionalString('LoginUser', 64) ?? DEFAULT_OS_USER;
        parseOsUser(osUser);
        return { regionId, instanceId, osUser };
      },
      authorize: (input, ctx) => logonCheck(deps, ctx, LOGIN_INSTANCE_ACTION, input, false),
      async run({ regionId, instanceId, osUser }, ctx) {
        // Fail early with the reason a person can act on (unknown instance, agent offline).
        const instance = await deps.logon.instanceFor(ctx.accountId, regionId, instanceId, {
          viaTunnel: true,
        });
        const { ticket, expiresAtMs } = await deps.tickets.issue({
          sessionId: `${TUNNEL_SESSION_PREFIX}${randomUUID()}`,
          accountId: ctx.accountId,
          regionId,
          instanceId: instance.id,
          osUser,
          caller: principalName(ctx.principal),
          userId: ctx.principal.kind === 'user' ? ctx.principal.userId : null,
          requestId: ctx.requestId,
          sourceIp: ctx.requestFacts.sourceIp,
          secureTransport: ctx.requestFacts.secureTransport,
          mfaPresent: ctx.requestFacts.mfaPresent,
          credentialEpoch: ctx.requestFacts.consoleCredentialEpoch ?? null,
          accessKeyId: signingAccessKey(ctx),
          cols: 80,
          rows: 24,
        });
        return {
          TunnelUrl: tunnelUrl,
          Ticket: ticket,
          ExpiresIn: Math.max(1, Math.round((expiresAtMs - Date.now()) / 1000)),
        };
      },
    }),
  ];
}
