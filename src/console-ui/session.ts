/** Who is signed in, and the region the server serves (every ECS-style call names it). */
export interface SessionInfo {
  readonly UserName: string;
  readonly MfaPresent: boolean;
  readonly CsrfToken: string;
  readonly ExpiresAt: string;
  readonly RegionId: string;
}

let current: SessionInfo | undefined;

export function setSession(s: SessionInfo | undefined): void {
  current = s;
}

export function session(): SessionInfo {
  if (current === undefined) throw new Error('not signed in');
  return current;
}

export const region = (): string => session().RegionId;
