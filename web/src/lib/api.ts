// HTTP client of the portal and the admin panel: bearer access tokens, refresh tokens that work once
// (so refreshes are serialized: one in flight per tab, and across tabs through the Web Locks API),
// and the API's error body turned into ApiError.

/** An error answer of the API ({error:{code,message,details}}), or a network failure (status 0). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** The signed-in user as login and refresh return it. */
export interface SessionUser {
  id: string;
  email: string;
  name: string | null;
  role: string;
  merchantId: string | null;
  locale: string;
}

/** What login and refresh answer. */
export interface TokenPair {
  accessToken: string;
  refreshToken: string;
  expiresIn: number;
  user: SessionUser;
}

/** A stored session: the token pair plus when the access token expires (ms since epoch). */
export interface Session extends TokenPair {
  expiresAt: number;
}

export type Query = Record<string, string | number | boolean | null | undefined>;

export interface RequestOptions {
  body?: unknown;
  query?: Query;
  signal?: AbortSignal;
}

/** Builds `path?query`, leaving out empty values. */
export function withQuery(path: string, query?: Query): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === '') continue;
    params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

/** Turns a failed response into an ApiError with the API's code and message. */
export async function errorFrom(response: Response): Promise<ApiError> {
  let code = `http_${response.status}`;
  let message = response.statusText || `HTTP ${response.status}`;
  let details: unknown;
  try {
    const body = (await response.json()) as {
      error?: { code?: string; message?: string; details?: unknown };
    };
    if (body.error?.code) code = body.error.code;
    if (body.error?.message) message = body.error.message;
    details = body.error?.details;
  } catch {
    // Not JSON (a proxy's error page): keep the status text.
  }
  return new ApiError(response.status, code, message, details);
}

/** fetch that turns network failures into ApiError(0, 'network_error'). */
export async function send(url: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (error) {
    if (error instanceof DOMException && error.name === 'AbortError') throw error;
    throw new ApiError(0, 'network_error', 'The server cannot be reached. Check the connection.');
  }
}

/** Refresh this long before the access token expires, so requests never race its expiry. */
const EXPIRY_MARGIN_MS = 30_000;

/**
 * A signed-in API client for one audience (portal or admin). The session lives in localStorage so a
 * reload keeps it; every tab shares it. A refresh token works once: refreshes are single-flight in
 * this tab, and hold a Web Lock across tabs; after the lock a tab first re-reads storage, since another
 * tab may already have rotated the token.
 */
export class AuthClient {
  private refreshing: Promise<Session | null> | null = null;
  private readonly listeners = new Set<(session: Session | null) => void>();

  constructor(
    /** '/api/v1/portal' or '/api/v1/admin'. */
    readonly base: string,
    private readonly storageKey: string,
  ) {
    window.addEventListener('storage', (event) => {
      if (event.key === this.storageKey) this.emit(this.session);
    });
  }

  /** The stored session, or null when signed out. */
  get session(): Session | null {
    try {
      const raw = localStorage.getItem(this.storageKey);
      return raw ? (JSON.parse(raw) as Session) : null;
    } catch {
      return null;
    }
  }

  /** The stored session as raw text: a stable snapshot for useSyncExternalStore. */
  snapshot(): string | null {
    try {
      return localStorage.getItem(this.storageKey);
    } catch {
      return null;
    }
  }

  private store(session: Session | null): void {
    if (session) localStorage.setItem(this.storageKey, JSON.stringify(session));
    else localStorage.removeItem(this.storageKey);
    this.emit(session);
  }

  private emit(session: Session | null): void {
    for (const listener of this.listeners) listener(session);
  }

  /** Calls `listener` on sign-in, refresh and sign-out (in this tab or another). */
  subscribe(listener: (session: Session | null) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private toSession(pair: TokenPair): Session {
    return { ...pair, expiresAt: Date.now() + pair.expiresIn * 1000 };
  }

  /** Signs in; `merchantId` picks the account when one email and password open several (409 merchant_required). */
  async login(email: string, password: string, merchantId?: string): Promise<Session> {
    const response = await send(`${this.base}/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(merchantId ? { email, password, merchantId } : { email, password }),
    });
    if (!response.ok) throw await errorFrom(response);
    const session = this.toSession((await response.json()) as TokenPair);
    this.store(session);
    return session;
  }

  async logout(): Promise<void> {
    const session = this.session;
    this.store(null);
    if (!session) return;
    await send(`${this.base}/auth/logout`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ refreshToken: session.refreshToken }),
    }).catch(() => undefined);
  }

  /** Drops the session locally (after a 401 that a refresh could not cure). */
  endSession(): void {
    this.store(null);
  }

  /**
   * A fresh session after `staleToken` stopped working; null when the session is over (refresh token
   * expired, revoked or reused). One refresh at a time per tab; across tabs through navigator.locks.
   */
  refresh(staleAccessToken: string): Promise<Session | null> {
    if (this.refreshing) return this.refreshing;
    const run = () => this.refreshNow(staleAccessToken);
    const locks = typeof navigator !== 'undefined' ? navigator.locks : undefined;
    const job: Promise<Session | null> = locks
      ? (async () => await locks.request(`${this.storageKey}:refresh`, run))()
      : run();
    const refreshing = job.finally(() => {
      this.refreshing = null;
    });
    this.refreshing = refreshing;
    return refreshing;
  }

  private async refreshNow(staleAccessToken: string): Promise<Session | null> {
    const current = this.session;
    if (!current) return null;
    // Another tab (or an earlier refresh here) already rotated the pair: use it.
    if (current.accessToken !== staleAccessToken && current.expiresAt - EXPIRY_MARGIN_MS > Date.now()) {
      return current;
    }
    const response = await send(`${this.base}/auth/refresh`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ refreshToken: current.refreshToken }),
    });
    if (response.ok) {
      const session = this.toSession((await response.json()) as TokenPair);
      this.store(session);
      return session;
    }
    // 401 (used, revoked, expired) ends the session; a 5xx or 429 keeps it for a later try.
    if (response.status === 401 || response.status === 403) {
      this.store(null);
      return null;
    }
    throw await errorFrom(response);
  }

  private async validSession(): Promise<Session> {
    let session = this.session;
    if (session && session.expiresAt - EXPIRY_MARGIN_MS <= Date.now()) {
      session = await this.refresh(session.accessToken);
    }
    if (!session) throw new ApiError(401, 'unauthorized', 'Signed out');
    return session;
  }

  /** An authenticated request; a 401 triggers one refresh and one retry. */
  async raw(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    const url = withQuery(`${this.base}${path}`, options.query);
    const attempt = (token: string) =>
      send(url, {
        method,
        signal: options.signal,
        headers: {
          authorization: `Bearer ${token}`,
          ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
      });
    const session = await this.validSession();
    let response = await attempt(session.accessToken);
    if (response.status === 401) {
      const renewed = await this.refresh(session.accessToken);
      if (!renewed) throw await errorFrom(response);
      response = await attempt(renewed.accessToken);
      if (response.status === 401) {
        this.store(null);
        throw await errorFrom(response);
      }
    }
    if (!response.ok) throw await errorFrom(response);
    return response;
  }

  /** An authenticated JSON request (null for 204). */
  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const response = await this.raw(method, path, options);
    if (response.status === 204) return null as T;
    const text = await response.text();
    return (text ? JSON.parse(text) : null) as T;
  }

  get<T>(path: string, query?: Query, signal?: AbortSignal): Promise<T> {
    return this.request<T>('GET', path, { query, signal });
  }

  post<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('POST', path, { body: body ?? {} });
  }

  put<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PUT', path, { body });
  }

  patch<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PATCH', path, { body });
  }

  delete<T>(path: string): Promise<T> {
    return this.request<T>('DELETE', path);
  }

  /** Downloads an authenticated file (e.g. the CSV export) through a temporary object URL. */
  async download(path: string, query: Query, filename: string): Promise<void> {
    const response = await this.raw('GET', path, { query });
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    const link = document.createElement('a');
    link.href = url;
    link.download = filename;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }
}
