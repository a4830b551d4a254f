/**
 * The console's only way to the server: JSON over fetch to /console/api/*, the session cookie sent by the
 * browser, the CSRF token in a header on every POST. Errors keep the server's code and message.
 */
const CSRF_HEADER = 'x-keyward-csrf';
let csrfToken = '';

export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
    readonly requestId: string,
  ) {
    super(message);
  }
}

export function setCsrfToken(token: string): void {
  csrfToken = token;
}

/** Called when the server says the session is gone, so the page can ask to sign in again. */
let onSignedOut: (message: string) => void = () => undefined;
export function whenSignedOut(fn: (message: string) => void): void {
  onSignedOut = fn;
}

export interface CallOptions {
  /** A refresh the page makes by itself: it does not keep an idle session alive. */
  readonly background?: boolean;
}

async function request<T>(
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  opts: CallOptions = {},
): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      credentials: 'same-origin',
      cache: 'no-store',
      headers: {
        accept: 'application/json',
        ...(method === 'POST' && { 'content-type': 'application/json', [CSRF_HEADER]: csrfToken }),
        ...(opts.background === true && { 'x-keyward-background': '1' }),
      },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
  } catch {
    throw new ApiError(
      'NetworkError',
      'The Keyward server cannot be reached; check that it is running.',
      0,
      '',
    );
  }
  let data: Record<string, unknown> = {};
  try {
    data = (await res.json()) as Record<string, unknown>;
  } catch {
    // An empty or non-JSON answer: handled below by status.
  }
  if (!res.ok) {
    const code = typeof data['Code'] === 'string' ? data['Code'] : `HTTP${String(res.status)}`;
    const message =
      typeof data['Message'] === 'string' ? data['Message'] : `The server answered ${String(res.status)}.`;
    const err = new ApiError(
      code,
      message,
      res.status,
      typeof data['RequestId'] === 'string' ? data['RequestId'] : '',
    );
    if (code === 'Console.NotSignedIn' && path !== '/console/api/session') onSignedOut(message);
    throw err;
  }
  return data as T;
}

export const get = <T>(path: string): Promise<T> => request<T>('GET', path);
export const post = <T>(path: string, body: unknown = {}, opts: CallOptions = {}): Promise<T> =>
  request<T>('POST', path, body, opts);

/** Runs an API action as the signed-in user: the same parameters and answer as the ECS-style API. */
export function call<T>(
  action: string,
  params: Record<string, string> = {},
  opts: CallOptions = {},
): Promise<T> {
  return post<T>(`/console/api/call/${action}`, params, opts);
}

const MAX_PAGES = 20;

/** Every item of a paged Describe* call (PageSize 50, at most MAX_PAGES pages). */
export async function callAllPages<T>(
  action: string,
  params: Record<string, string>,
  pick: (page: Record<string, unknown>) => T[],
  opts: CallOptions = {},
): Promise<T[]> {
  const out: T[] = [];
  for (let page = 1; page <= MAX_PAGES; page += 1) {
    const res = await call<Record<string, unknown>>(
      action,
      { ...params, PageNumber: String(page), PageSize: '50' },
      opts,
    );
    const items = pick(res);
    out.push(...items);
    const total = Number(res['TotalCount'] ?? 0);
    if (items.length === 0 || out.length >= total) break;
  }
  return out;
}
