/**
 * One-time logon actions (version KEYWARD_API_VERSION; ECS has no equivalent, so they take Keyward's own
 * names, shaped like ECS responses):
 * - SendSSHPublicKey: the caller made a key pair on their own machine (`keyward ssh`) and sends only the
 *   public key, like EC2 Instance Connect's action of the same name. Answers once the agent has installed
 *   it, with what the client needs to verify the host (the pinned host keys) and reach it. The key line
 *   refuses port forwarding unless `PortForwarding=true` and `ecs-workbench:PortForwarding` is allowed.
 * - StartTerminalSession: a ticket for the terminal WebSocket, where the broker logs on for the caller.
 * - DescribeLogonGrants: the life record of one-time keys (issued, installed, used, destroyed, removed).
 * The logons authorize `ecs-workbench:LoginInstance` on the instance's workbench resource, with the OS user
 * as the condition key `ecs-workbench:LoginUser` and the instance's tags as `acs:ResourceTag/<key>`, before
 * anything else happens.
 */
import { randomUUID } from 'node:crypto';
import { arn, principalName } from '../../identity/index.js';
import {
  checkTerminalSize,
  parseOsUser,
  TERMINAL_PATH,
  TERMINAL_SUBPROTOCOL,
  type LogonGrantRecord,
  type LogonGrantRepository,
  type LogonService,
  type TerminalTickets,
} from '../../logon/index.js';
import type { InstanceService } from '../../instances/index.js';
import { RESOURCE_TAG_KEYS } from '../../policy/index.js';
import { ecsTimeSeconds } from '../ecs-shapes.js';
import {
  defineAction,
  KEYWARD_API_VERSION,
  readRegionId,
  tagConditions,
  type AuthorizationCheck,
  type RpcAction,
  type RpcContext,
} from '../rpc-action.js';
import { consoleUserOf } from '../rpc-dispatcher.js';

export const LOGIN_INSTANCE_ACTION = 'ecs-workbench:LoginInstance';
export const LOGIN_USER_CONDITION_KEY = 'ecs-workbench:LoginUser';
/** Needed besides LoginInstance for a one-time key that may forward ports (`ssh -L/-R/-D`). */
export const PORT_FORWARDING_ACTION = 'ecs-workbench:PortForwarding';
/**
 * Bool: whether the logon's session is recorded. "true" for StartTerminalSession while the server records
 * broker sessions; "false" for SendSSHPublicKey (the session runs in the user's own ssh, unrecorded).
 */
export const SESSION_RECORDING_CONDITION_KEY = 'ecs-workbench:SessionRecording';
const DEFAULT_OS_USER = 'root';

export interface LogonActionDeps {
  readonly logon: LogonService;
  readonly grants: LogonGrantRepository;
  readonly tickets: TerminalTickets;
  readonly instances: InstanceService;
  readonly regions: ReadonlySet<string>;
  /** The server records broker sessions (`--session-recording` on or required). */
  readonly sessionRecording: boolean;
}

/** LoginInstance and PortForwarding carry the OS user, whether the session is recorded and the tags. */
export const LOGON_KEYS = [LOGIN_USER_CONDITION_KEY, SESSION_RECORDING_CONDITION_KEY, RESOURCE_TAG_KEYS];

/** The check of a logon: `action` on the instance's workbench resource, as `osUser`, with its tags. */
export async function logonCheck(
  deps: LogonActionDeps,
  ctx: RpcContext,
  action: string,
  input: { readonly regionId: string; readonly instanceId: string; readonly osUser: string },
  recorded: boolean,
): Promise<AuthorizationCheck> {
  const facts = (await deps.instances.resourceFacts(ctx.accountId, [input.instanceId])).get(input.instanceId);
  const resource = arn.workbench(input.regionId, ctx.accountId, input.instanceId);
  return {
    action,
    resources: [resource],
    conditions: {
      [LOGIN_USER_CONDITION_KEY]: input.osUser,
      [SESSION_RECORDING_CONDITION_KEY]: String(recorded),
    },
    resourceConditions: new Map([[resource, tagConditions(facts?.tags ?? [])]]),
  };
}

/**
 * The access key a terminal or tunnel ticket remembers, so that disabling or deleting it ends what it
 * opened; null for calls from the console (they end with the user's credential epoch instead).
 */
export function signingAccessKey(ctx: RpcContext): string | null {
  return consoleUserOf(ctx.accessKeyId) === undefined ? ctx.accessKeyId : null;
}

const iso = (v: string | null): string | null => (v === null ? null : ecsTimeSeconds(v));

/** A grant as DescribeLogonGrants shows it. */
function grantView(g: LogonGrantRecord) {
  return {
    GrantId: g.id,
    InstanceId: g.instanceId,
    InstanceOSUser: g.osUser,
    Kind: g.kind,
    Caller: g.caller,
    RequestId: g.requestId,
    SourceIp: g.sourceIp,
    KeyFingerprint: g.keyFingerprint,
    PortForwarding: g.portForwarding,
    IssuedAt: iso(g.issuedAt),
    ExpiresAt: iso(g.expiresAt),
    InstalledAt: iso(g.installedAt),
    HostExpiresAt: iso(g.hostExpiresAt),
    UsedAt: iso(g.usedAt),
    UsedFrom: g.usedFrom,
    UsedPort: g.usedPort,
    UseCount: g.useCount,
    FailureCode: g.failureCode,
    DestroyedAt: iso(g.destroyedAt),
    DestroyReason: g.destroyReason,
    HostRemovedAt: iso(g.hostRemovedAt),
    HostRemovedReason: g.hostRemovedReason,
  };
}

export function logonActions(deps: LogonActionDeps): RpcAction[] {
  return [
    defineAction({
      name: 'SendSSHPublicKey',
      version: KEYWARD_API_VERSION,
      permissions: [
        { action: LOGIN_INSTANCE_ACTION, conditionKeys: LOGON_KEYS },
        { action: PORT_FORWARDING_ACTION, conditionKeys: LOGON_KEYS },
      ],
      read(params) {
        const regionId = readRegionId(params, deps.regions);
        const instanceId = params.requiredString('InstanceId', 64);
        const osUser = params.optionalString('InstanceOSUser', 64) ?? DEFAULT_OS_USER;
        const publicKey = params.requiredString('SSHPublicKey', 1024);
        const portForwarding = params.boolean('PortForwarding', false);
        parseOsUser(osUser);
        return { regionId, instanceId, osUser, publicKey, portForwarding };
      },
      async authorize(input, ctx) {
        const login = await logonCheck(deps, ctx, LOGIN_INSTANCE_ACTION, input, false);
        return input.portForwarding ? [login, { ...login, action: PORT_FORWARDING_ACTION }] : [login];
      },
      async run({ regionId, instanceId, osUser, publicKey, portForwarding }, ctx) {
        const grant = await deps.logon.issue({
          accountId: ctx.accountId,
          regionId,
          instanceId,
          osUser,
          publicKey: publicKey.trim().split(/\s+/).slice(0, 2).join(' '),
          kind: 'client',
          portForwarding,
          caller: principalName(ctx.principal),
          requestId: ctx.requestId,
          sourceIp: ctx.requestFacts.sourceIp,
        });
        return {
          Success: true,
          GrantId: grant.grantId,
          InstanceId: grant.instance.id,
          InstanceOSUser: osUser,
          PortForwarding: portForwarding,
          ExpiresAt: new Date(grant.expiresAtMs).toISOString(),
          HostExpiresAt: new Date(grant.hostExpiresAt * 1000).toISOString(),
          SshAddress: grant.instance.sshAddress,
          // How clients reach sshd (ModifyInstanceAttribute SshRoute): `keyward proxy` and `keyward ssh`
          // follow it unless told otherwise.
          SshRoute: grant.instance.sshRoute,
          HostKeys: {
            HostKey: grant.instance.hostKeys.map((k) => ({
              Type: k.type,
              PublicKey: k.publicKey,
              FingerprintSha256: k.fingerprintSha256,
            })),
          },
        };
      },
    }),
    defineAction({
      name: 'StartTerminalSession',
      version: KEYWARD_API_VERSION,
      permissions: [{ action: LOGIN_INSTANCE_ACTION, conditionKeys: LOGON_KEYS }],
      read(params) {
        const regionId = readRegionId(params, deps.regions);
        const instanceId = params.requiredString('InstanceId', 64);
        const osUser = params.optionalString('InstanceOSUser', 64) ?? DEFAULT_OS_USER;
        const cols = params.integer('Cols', { min: 1, max: 1000, fallback: 80 });
        const rows = params.integer('Rows', { min: 1, max: 1000, fallback: 24 });
        parseOsUser(osUser);
        checkTerminalSize(cols, rows);
        return { regionId, instanceId, osUser, cols, rows };
      },
      authorize: (input, ctx) => logonCheck(deps, ctx, LOGIN_INSTANCE_ACTION, input, deps.sessionRecording),
      async run({ regionId, instanceId, osUser, cols, rows }, ctx) {
        // Fail early with the reason a person can act on (unknown instance, agent offline).
        const instance = await deps.logon.instanceFor(ctx.accountId, regionId, instanceId);
        const sessionId = `ts-${randomUUID()}`;
        const { ticket, expiresAtMs } = await deps.tickets.issue({
          sessionId,
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
          cols,
          rows,
        });
        return {
          SessionId: sessionId,
          InstanceId: instance.id,
          InstanceOSUser: osUser,
          WebSocketPath: TERMINAL_PATH,
          Subprotocols: { Subprotocol: [TERMINAL_SUBPROTOCOL, `ticket.${ticket}`] },
          TicketExpiresAt: new Date(expiresAtMs).toISOString(),
          KeyLifetimeSeconds: deps.logon.keyLifetimeSeconds,
        };
      },
    }),
    defineAction({
      name: 'DescribeLogonGrants',
      version: KEYWARD_API_VERSION,
      readOnly: true,
      permissions: [{ action: 'ecs-workbench:DescribeLogonGrants', conditionKeys: [] }],
      read: (params) => ({
        regionId: readRegionId(params, deps.regions),
        grantId: params.optionalString('GrantId', 32),
        limit: params.integer('MaxResults', { min: 1, max: 100, fallback: 50 }),
      }),
      authorize: ({ regionId }, ctx) => ({
        action: 'ecs-workbench:DescribeLogonGrants',
        resources: [arn.workbench(regionId, ctx.accountId, '*')],
      }),
      async run({ regionId, grantId, limit }, ctx) {
        const grants =
          grantId === undefined
            ? await deps.grants.list(ctx.accountId, limit)
            : [await deps.grants.get(ctx.accountId, grantId)].filter((g) => g !== undefined);
        return {
          Grants: { Grant: grants.filter((g) => g.regionId === regionId).map(grantView) },
        };
      },
    }),
  ];
}
