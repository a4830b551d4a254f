/**
 * The public API of Keyward's signing client: `RpcClient` and the `RpcError` it throws.
 */
export {
  DEFAULT_API_VERSION,
  DEFAULT_TIMEOUT_MS,
  MAX_RESPONSE_BYTES,
  RPC_CLIENT_ERROR_CODES,
  RpcClient,
  RpcError,
  type RpcCallOptions,
  type RpcClientErrorCode,
  type RpcClientOptions,
  type RpcParams,
} from './rpc-client.js';
