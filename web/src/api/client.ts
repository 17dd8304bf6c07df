import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { CatalogService } from "../gen/catalog/v1/catalog_pb";
import { slicedFetch } from "../lib/slicedFetch";
import { authInterceptor } from "./auth";
import { SESSION_HEADER, STATUS_HEADER, session } from "./session";

// Calls made before the first session id is known wait for the first one to
// finish, so that a page that starts with several calls ends up in one session.
let firstCall: Promise<unknown> | null = null;

const sessionInterceptor: Interceptor = (next) => async (req) => {
  if (session.id === null && firstCall) {
    await firstCall.catch(() => undefined);
  }
  const sent = session.id;
  if (sent) req.header.set(SESSION_HEADER, sent);
  const run = (async () => {
    try {
      const res = await next(req);
      session.observe(sent, res.header.get(SESSION_HEADER), res.header.get(STATUS_HEADER));
      return res;
    } catch (e) {
      if (e instanceof ConnectError) {
        session.observe(sent, e.metadata.get(SESSION_HEADER), e.metadata.get(STATUS_HEADER));
      }
      throw e;
    }
  })();
  if (sent === null && !firstCall) {
    firstCall = run.finally(() => {
      firstCall = null;
    });
  }
  return run;
};

/** The catalog API lives next to the page: "/" or behind a path prefix. */
export function apiBaseUrl(): string {
  const url = new URL(".", window.location.href);
  return url.href.replace(/\/$/, "");
}

export const transport = createConnectTransport({
  baseUrl: apiBaseUrl(),
  useBinaryFormat: false,
  fetch: slicedFetch,
  interceptors: [authInterceptor, sessionInterceptor],
});

export const catalog = createClient(CatalogService, transport);

export function errorText(e: unknown): string {
  if (e instanceof ConnectError) {
    if (e.code === Code.Unavailable || e.code === Code.Unknown) {
      return `${e.rawMessage || "the catalog server did not answer"} (${Code[e.code]})`;
    }
    return `${e.rawMessage} (${Code[e.code]})`;
  }
  if (e instanceof Error) return e.message;
  return String(e);
}

export function isAbort(e: unknown): boolean {
  return (
    (e instanceof ConnectError && e.code === Code.Canceled) ||
    (e instanceof DOMException && e.name === "AbortError")
  );
}
