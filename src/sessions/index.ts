/**
 * Recorded broker sessions: asciicast v2 recordings of the terminal WebSocket's sessions, their rows
 * (`terminal_sessions`), reading and verifying recordings, and retention.
 */
export {
  AsciicastRecorder,
  BACKLOG_HIGH_WATER_BYTES,
  FLUSH_INTERVAL_MS,
  RECORDING_STATES,
  type AsciicastHeader,
  type RecorderOptions,
  type RecordingState,
  type RecordingSummary,
} from './asciicast-recorder.js';
export type {
  EndedTerminalSession,
  NewTerminalSession,
  SessionFilter,
  TerminalSessionRecord,
} from './model.js';
export { SessionRepository, type SweptSession } from './session-repository.js';
export {
  DEFAULT_RECORDING_MAX_BYTES,
  DEFAULT_RECORDING_RETENTION_DAYS,
  ensureRecordingsDir,
  INTERRUPTED_REASON,
  LiveSession,
  MAX_RECORDING_PAGE_BYTES,
  SESSION_RECORDING_MODES,
  SessionRecordings,
  type InterruptedSession,
  type LiveSessionEnd,
  type SessionEnd,
  type SessionRecordingMode,
  type SessionRecordingsDeps,
  type SessionStart,
} from './session-recordings.js';
