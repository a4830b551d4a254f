/**
 * The API versions Keyward answers, in a module of their own that imports nothing: the CLI needs them
 * on every call, and `keyward ssh` starts faster when it does not load the action machinery with them.
 */

/** ECS API version of the key pair and instance actions. */
export const ECS_API_VERSION = '2014-05-26';
/** RAM API version of the access key actions. */
export const RAM_API_VERSION = '2015-05-01';
/** API version of Keyward's own actions (one-time logon, terminal sessions, audit), which ECS lacks. */
export const KEYWARD_API_VERSION = '2026-11-01';
