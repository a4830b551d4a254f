/**
 * The sessions domain's records: a broker terminal session and its recording, as the domain sees them
 * (camelCase). The repository maps `terminal_sessions` rows to these; the RPC view maps these to the API.
 */
import type { RecordingState } from './asciicast-recorder.js';

/** What is written when the broker has bridged a shell. */
export interface NewTerminalSession {
  readonly id: string;
  readonly accountId: string;
  readonly regionId: string;
  readonly instanceId: string;
  readonly osUser: string;
  readonly caller: string;
  readonly sourceIp: string;
  readonly grantId: string;
  readonly startedAt: string;
  /** The file name in the recordings directory; null when the session is not recorded. */
  readonly recordingFile: string | null;
  readonly recordingState: RecordingState;
  readonly recordingInput: boolean;
  /** The replica bridging the session (null on rows written before migration 0015). */
  readonly replicaId: string | null;
}

/** What is written when it ends. */
export interface EndedTerminalSession {
  readonly endedAt: string;
  readonly endReason: string;
  readonly durationSeconds: number;
  readonly outputBytes: number;
  readonly recordingState: RecordingState;
  readonly recordingBytes: number | null;
  readonly recordingSha256: string | null;
}

export interface TerminalSessionRecord extends NewTerminalSession {
  readonly endedAt: string | null;
  readonly endReason: string | null;
  readonly durationSeconds: number | null;
  readonly outputBytes: number;
  readonly recordingBytes: number | null;
  readonly recordingSha256: string | null;
}

/** DescribeSessions' filters; times ISO-8601, inclusive, on the start time. */
export interface SessionFilter {
  readonly accountId: string;
  readonly regionId: string;
  readonly sessionIds?: readonly string[];
  readonly instanceId?: string;
  readonly caller?: string;
  readonly since?: string;
  readonly until?: string;
}
