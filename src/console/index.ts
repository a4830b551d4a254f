/** The web console's server side: sessions, sign-in limiting, its JSON API, and its page and bundles. */
export {
  CONTENT_SECURITY_POLICY,
  ConsoleAssets,
  DEFAULT_ASSET_DIR,
  registerConsoleAssets,
} from './console-assets.js';
export { registerConsoleRoutes, type ConsoleRouteDeps } from './console-routes.js';
export {
  ConsoleSessions,
  CSRF_HEADER,
  SESSION_COOKIE,
  SESSION_IDLE_MS,
  SESSION_LIFETIME_MS,
  type ConsoleSession,
} from './console-sessions.js';
export {
  MAX_FAILURES_PER_ADDRESS,
  MAX_FAILURES_PER_USER,
  SignInLimiter,
  WINDOW_MS,
} from './sign-in-limiter.js';
