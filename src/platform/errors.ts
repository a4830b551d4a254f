/**
 * The one error registry of Keyward.
 *
 * Every error a client can see has a stable code listed here with its HTTP status and a summary. Where the
 * API is ECS-compatible the codes are Alibaba Cloud's own (see shared ECS-API.md); the rest follow the same
 * `Family.Detail` shape. Codes are API: never rename or reuse one. docs/errors.md lists the same table and a
 * test keeps the two in sync.
 *
 * Untrusted input becomes an `AppError` (4xx). Our own bugs and bad configuration stay plain `Error`s and
 * are turned into `InternalError` (500) with the detail only in the log, in exactly one place: the HTTP
 * error handler of the server.
 */

interface ErrorSpec {
  readonly status: number;
  readonly summary: string;
}

export const ERROR_CODES = {
  // Request shape.
  MissingParameter: { status: 400, summary: 'A required parameter is missing.' },
  InvalidParameter: { status: 400, summary: 'A parameter has a value that is not valid.' },
  UnknownParameter: { status: 400, summary: 'The request carries a parameter this action does not take.' },
  'InvalidAction.NotFound': { status: 404, summary: 'The action named in the request does not exist.' },
  InvalidVersion: { status: 400, summary: 'The API version is not supported for this action.' },
  'InvalidRegionId.NotFound': { status: 404, summary: 'The region does not exist on this server.' },
  RequestTooLarge: { status: 413, summary: 'The request line, headers or body exceed the size limit.' },
  RequestTimeout: { status: 408, summary: 'The request was not received in full in time.' },
  MalformedRequest: { status: 400, summary: 'The HTTP request cannot be parsed.' },
  'Throttling.User': { status: 429, summary: 'Too many requests; retry after the time given.' },
  'Throttling.Enrollment': {
    status: 429,
    summary: 'Too many enrollment requests from this address; retry after the time given.',
  },
  'Throttling.AgentHandshake': {
    status: 429,
    summary: 'Too many agent connections from this address, or too many still in their handshake.',
  },

  // Request signatures (ACS3-HMAC-SHA256 and legacy v1).
  IncompleteSignature: { status: 400, summary: 'The request is not signed, or its signature is incomplete.' },
  SignatureDoesNotMatch: { status: 400, summary: 'The request signature does not match.' },
  'InvalidAccessKeyId.NotFound': { status: 404, summary: 'The access key does not exist.' },
  'InvalidAccessKeyId.Inactive': { status: 400, summary: 'The access key is disabled.' },
  'InvalidTimeStamp.Format': { status: 400, summary: 'The request date is not in ISO 8601 UTC form.' },
  'InvalidTimeStamp.Expired': {
    status: 400,
    summary: 'The request date is more than 15 minutes behind or 5 minutes ahead of server time.',
  },
  SignatureNonceUsed: { status: 400, summary: 'The signature nonce was already used.' },

  // Key pairs.
  'InvalidKeyPairName.Malformed': { status: 400, summary: 'The key pair name breaks the naming rules.' },
  'KeyPair.AlreadyExist': { status: 400, summary: 'A key pair with this name already exists.' },
  'QuotaExceed.KeyPair': { status: 403, summary: 'The account has reached 500 key pairs in this region.' },
  'InvalidPublicKeyBody.Malformed': { status: 400, summary: 'The public key cannot be imported.' },
  'InvalidKeyPairNames.ValueNotSupported': { status: 400, summary: 'KeyPairNames is not a valid list.' },
  'InvalidKeyType.ValueNotSupported': { status: 400, summary: 'KeyType must be rsa or ed25519.' },

  // Instances and bindings.
  'InvalidKeyPairName.NotFound': { status: 404, summary: 'No key pair with this name exists in the region.' },
  'InvalidParameter.KeypairAlreadyAttachedInstance': {
    status: 400,
    summary: 'The key pair is bound to an instance; detach it first.',
  },
  'InvalidInstanceIds.ValueNotSupported': { status: 400, summary: 'InstanceIds is not a valid list.' },
  'InvalidInstanceId.NotFound': { status: 404, summary: 'No instance with this id exists in the region.' },
  'InvalidInstanceName.Malformed': { status: 400, summary: 'The instance name breaks the naming rules.' },
  IncorrectInstanceStatus: { status: 403, summary: 'The instance is in a state that does not allow this.' },
  'HostKeys.NoChange': { status: 409, summary: 'The instance has no host keys waiting to be accepted.' },
  'HostKeys.Mismatch': {
    status: 409,
    summary: 'The host keys waiting to be accepted are not the ones named.',
  },
  InvalidEnrollmentToken: {
    status: 403,
    summary: 'The enrollment token is unknown, expired or already used.',
  },
  'AgentDownload.UnsupportedArch': {
    status: 400,
    summary: 'The agent executable is built for x64 and arm64 only.',
  },
  'AgentDownload.NotBuilt': {
    status: 404,
    summary: 'The server has no agent executable for this architecture: run npm run build:agent.',
  },
  'KeyPair.NotAttached': { status: 400, summary: 'The key pair is not bound to the instance.' },
  'InvalidResourceId.NotFound': { status: 404, summary: 'A resource to tag or untag does not exist.' },
  'InvalidResourceType.NotSupported': { status: 400, summary: 'ResourceType must be instance.' },

  // Tags and resource groups.
  'Duplicate.TagKey': { status: 400, summary: 'The same tag key appears twice.' },
  'InvalidTagKey.Malformed': { status: 400, summary: 'A tag key breaks the tag rules.' },
  'InvalidTagValue.Malformed': { status: 400, summary: 'A tag value breaks the tag rules.' },
  'InvalidTagCount.LimitExceeded': { status: 400, summary: 'More than 20 tags were given.' },
  'InvalidResourceGroupId.Malformed': { status: 400, summary: 'The resource group id is malformed.' },

  // Access keys.
  'EntityNotExist.AccessKey': { status: 404, summary: 'The access key does not exist in this account.' },
  'LimitExceeded.AccessKey': { status: 409, summary: 'The account already has the most access keys.' },
  'Forbidden.AccessKeyInUse': {
    status: 403,
    summary: 'The access key signing the request cannot disable or delete itself.',
  },

  // One-time logon (SendSSHPublicKey, StartTerminalSession and the terminal WebSocket).
  'Logon.InvalidOsUser': { status: 400, summary: 'The OS user name is not a valid Linux user name.' },
  'Logon.InvalidPublicKey': { status: 400, summary: 'The one-time public key must be an Ed25519 key.' },
  'Logon.InstanceOffline': { status: 409, summary: "The instance's agent is not connected." },
  'Logon.UnknownOsUser': { status: 404, summary: 'The OS user does not exist on the instance.' },
  'Logon.HostRefused': { status: 502, summary: 'The agent on the instance refused the one-time key.' },
  'Logon.GrantNotInstalled': {
    status: 504,
    summary: 'The agent did not confirm the one-time key in time.',
  },
  'Logon.NoHostKeys': { status: 409, summary: 'The instance has no pinned host key to verify sshd with.' },
  'Logon.HostKeysChanged': {
    status: 409,
    summary: 'The instance reported host keys other than the pinned ones; they must be accepted first.',
  },
  'Logon.SshAddressRefused': {
    status: 409,
    summary: "The instance's SSH address is not one the server may connect to.",
  },
  'Logon.SshdUnreachable': { status: 502, summary: "The broker cannot reach the instance's sshd." },
  'Logon.HostKeyMismatch': {
    status: 502,
    summary: "sshd presented a host key that is not the instance's pinned key.",
  },
  'Logon.AuthenticationFailed': { status: 502, summary: 'sshd refused the one-time key.' },
  'Logon.TicketInvalid': {
    status: 401,
    summary: 'The terminal ticket is unknown, expired or already used.',
  },
  'Logon.AccessRevoked': {
    status: 403,
    summary: 'The caller may no longer log on to the instance; the terminal session was closed.',
  },
  'Logon.TooManyTerminalTickets': {
    status: 429,
    summary: 'The caller already has 20 terminal sessions starting (tickets not yet used).',
  },
  'Logon.TerminalTicketsExhausted': {
    status: 503,
    summary: 'The server has 10,000 terminal sessions starting; retry when unused tickets expire.',
  },

  // Recorded terminal sessions.
  'Session.NotFound': { status: 404, summary: 'No terminal session with this id exists in the account.' },
  'Session.RecordingUnavailable': {
    status: 404,
    summary: 'The session was not recorded, its recording expired, or its file is missing.',
  },
  'Session.RecordingFailed': {
    status: 500,
    summary: 'The session was closed: its recording could not be written and recording is required.',
  },
  'Session.RecordingLimit': {
    status: 413,
    summary: 'The session was closed: its recording reached the size limit and recording is required.',
  },
  'Session.Interrupted': {
    status: 503,
    summary: 'The session was closed: its server replica stalled and another closed it as interrupted.',
  },
  // SSH tunnels through the agent.
  'Tunnel.TicketInvalid': {
    status: 401,
    summary: 'The tunnel ticket is unknown, expired or already used.',
  },
  'Tunnel.TooManyTunnels': {
    status: 429,
    summary: 'A limit on open tunnels (per instance, per user or in all) was reached.',
  },
  'Tunnel.AgentUnreachable': {
    status: 504,
    summary: "The instance's agent did not open the tunnel in time.",
  },
  'Tunnel.SshdUnreachable': {
    status: 502,
    summary: "The instance's agent cannot reach its own sshd.",
  },
  'Tunnel.AgentCredentialInvalid': {
    status: 401,
    summary: "An agent's tunnel connection names no pending tunnel or carries the wrong token.",
  },
  'Tunnel.DialMisrouted': {
    status: 502,
    summary: "The instance's agent dialed its tunnel to another replica than the one that asked.",
  },
  'Tunnel.IdleTimeout': {
    status: 408,
    summary: 'The tunnel carried no bytes either way for the session idle timeout and was closed.',
  },

  // Web console sessions.
  'Console.InvalidCredentials': { status: 401, summary: 'The user name or password is wrong.' },
  'Console.MfaRequired': { status: 401, summary: 'The user has MFA: send the current TOTP code too.' },
  'Console.SignInLocked': { status: 429, summary: 'Too many failed sign-ins; wait before trying again.' },
  'Console.NotSignedIn': { status: 401, summary: 'No console session, or it expired: sign in.' },
  'Console.CsrfRejected': {
    status: 403,
    summary: 'The request lacks the session CSRF token or comes from another site.',
  },

  // Authorization (RAM policies).
  'Forbidden.RAM': {
    status: 403,
    summary: 'No policy attached to the caller allows this action on this resource, or one denies it.',
  },

  // RAM users, login profiles and MFA devices.
  'InvalidParameter.UserName': { status: 400, summary: 'The user name breaks the naming rules.' },
  'InvalidParameter.DisplayName': { status: 400, summary: 'The display name breaks the naming rules.' },
  'EntityNotExist.User': { status: 404, summary: 'No user with this name exists in the account.' },
  'EntityAlreadyExists.User': { status: 409, summary: 'A user with this name already exists.' },
  'LimitExceeded.User': { status: 409, summary: 'The account already has the most users.' },
  'DeleteConflict.User.AccessKey': {
    status: 409,
    summary: 'The user still has access keys; delete them first.',
  },
  'DeleteConflict.User.Policy': {
    status: 409,
    summary: 'The user still has policies attached; detach them first.',
  },
  'EntityNotExist.User.LoginProfile': { status: 404, summary: 'The user has no console login profile.' },
  'EntityAlreadyExists.User.LoginProfile': { status: 409, summary: 'The user already has a login profile.' },
  'InvalidParameter.PasswordPolicy': { status: 400, summary: 'The password breaks the password policy.' },
  'InvalidParameter.VirtualMFADeviceName': { status: 400, summary: 'The MFA device name breaks the rules.' },
  'EntityNotExist.VirtualMFADevice': {
    status: 404,
    summary: 'No MFA device with this serial number exists.',
  },
  'EntityAlreadyExists.VirtualMFADevice': { status: 409, summary: 'An MFA device with this name exists.' },
  'EntityNotExist.User.MFADevice': { status: 404, summary: 'The user has no MFA device bound.' },
  'EntityAlreadyExists.User.MFADevice': { status: 409, summary: 'The user already has an MFA device bound.' },
  'InvalidParameter.AuthenticationCode': {
    status: 400,
    summary: 'The MFA codes are wrong: two consecutive current codes are needed.',
  },

  // RAM policies.
  'InvalidParameter.PolicyName': { status: 400, summary: 'The policy name breaks the naming rules.' },
  MalformedPolicyDocument: { status: 400, summary: 'The policy document breaks the policy grammar.' },
  'EntityNotExist.Policy': { status: 404, summary: 'No policy with this name and type exists.' },
  'EntityAlreadyExists.Policy': { status: 409, summary: 'A custom policy with this name already exists.' },
  'LimitExceeded.Policy': { status: 409, summary: 'The account already has the most custom policies.' },
  'DeleteConflict.Policy.User': { status: 409, summary: 'The policy is attached to users; detach it first.' },
  'EntityAlreadyExists.User.Policy': { status: 409, summary: 'The policy is already attached to the user.' },
  'EntityNotExist.User.Policy': { status: 404, summary: 'The policy is not attached to the user.' },
  'LimitExceeded.User.Policy': { status: 409, summary: 'The user already has the most policies attached.' },

  // Our side.
  InternalError: { status: 500, summary: 'The server failed; the log holds the detail for this request.' },
  'AuditLog.Unavailable': {
    status: 503,
    summary: 'The audit event of this request could not be written, so the request was not carried out.',
  },
  ServiceUnavailable: {
    status: 503,
    summary: 'The server is shutting down or not yet ready, or its database cannot be reached right now.',
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** An error caused by a client's input, safe to show to that client: code, status and message. */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Extra response headers (for example `x-acs-retry-after` on throttling). */
  readonly headers: Readonly<Record<string, string>>;
  /**
   * Extra fields of the JSON error body (for example `AccessDeniedDetail` on `Forbidden.RAM`). They never
   * replace the standard fields (RequestId, HostId, Code, Message, Recommend).
   */
  readonly bodyFields: Readonly<Record<string, unknown>>;

  constructor(
    code: ErrorCode,
    message: string,
    options?: { headers?: Record<string, string>; bodyFields?: Record<string, unknown>; cause?: unknown },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.headers = options?.headers ?? {};
    this.bodyFields = options?.bodyFields ?? {};
  }
}

/** True when `err` is an AppError carrying `code` (for tests and adapters). */
export function isAppError(err: unknown, code?: ErrorCode): err is AppError {
  return err instanceof AppError && (code === undefined || err.code === code);
}
