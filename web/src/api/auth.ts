// Sign-in as the page sees it. With `--auth token` the page asks for the team's token
// once, keeps it in sessionStorage (this tab only, like the session id) and sends it as
// `Authorization: Bearer` on every API call. With `--auth oidc` the server signs people
// in (a cookie); with `--auth proxy` a proxy in front does. GetSession says who we are.
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { useEffect, useState } from "preact/hooks";

const TOKEN_KEY = "catalog.auth-token";
/** The sign-in mode an UNAUTHENTICATED answer names: token, proxy or oidc. */
export const AUTH_MODE_HEADER = "X-Catalog-Auth";

export interface Who {
  identity: string;
  mode: string;
  groups: string[];
  signOutUrl: string;
}

export interface AuthState {
  who: Who | null;
  /** Set when the API refused us: how to sign in, and why. */
  needed: { mode: string; message: string; rejected: boolean } | null;
}

let memoryToken: string | null = null;
let state: AuthState = { who: null, needed: null };
const listeners = new Set<(s: AuthState) => void>();

function set(patch: Partial<AuthState>): void {
  state = { ...state, ...patch };
  for (const fn of listeners) fn(state);
}

export function token(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? memoryToken;
  } catch {
    return memoryToken;
  }
}

function storeToken(value: string | null): void {
  memoryToken = value;
  try {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage disabled: the in-memory copy lasts as long as the page.
  }
}

/** Keep the token for this tab and start again with it. */
export function saveToken(value: string): void {
  storeToken(value.trim());
  window.location.reload();
}

/** Forget the token (sign out of a token-mode catalog): the page asks again. */
export function forgetToken(): void {
  storeToken(null);
  window.location.reload();
}

export const authInterceptor: Interceptor = (next) => async (req) => {
  const sent = token();
  if (sent) req.header.set("Authorization", `Bearer ${sent}`);
  try {
    const res = await next(req);
    if (req.method.name === "GetSession" && !res.stream) {
      const m = res.message as unknown as { identity: string; authMode: string; groups: string[]; signOutUrl: string };
      set({ who: { identity: m.identity, mode: m.authMode, groups: [...m.groups], signOutUrl: m.signOutUrl }, needed: null });
    }
    return res;
  } catch (e) {
    if (e instanceof ConnectError && e.code === Code.Unauthenticated) {
      const mode = e.metadata.get(AUTH_MODE_HEADER) ?? "";
      set({ needed: { mode, message: e.rawMessage, rejected: !!sent } });
    }
    throw e;
  }
};

export function useAuth(): AuthState {
  const [s, setS] = useState(state);
  useEffect(() => {
    listeners.add(setS);
    setS(state);
    return () => {
      listeners.delete(setS);
    };
  }, []);
  return s;
}
