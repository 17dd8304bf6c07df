import { timestampDate } from "@bufbuild/protobuf/wkt";
import { useEffect, useState } from "preact/hooks";
import { catalog, errorText } from "../api/client";
import { session, type LostReason } from "../api/session";
import type { LoadProtosRequest, LoadProtosResponse, ServiceInfo } from "../gen/catalog/v1/catalog_pb";
import { loadSources, saveSources, type SourceRecord, type SourceSpec } from "../lib/sources";
import { SchemaSet } from "../schema/types";
import { parseRoute, type Route } from "../lib/route";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { LoadProtosRequestSchema } from "../gen/catalog/v1/catalog_pb";

export interface SessionView {
  id: string;
  expiresAt: number | null;
  createdAt: number | null;
  ttlSeconds: number;
  fileCount: number;
  serviceCount: number;
  /** Time (local clock) of the last response in this session: the TTL counts from there. */
  lastActivity: number;
}

export interface SchemaEntry {
  status: "loading" | "ready" | "error";
  service?: ServiceInfo;
  set?: SchemaSet;
  error?: string;
}

export interface Toast {
  id: number;
  kind: "info" | "success" | "error";
  text: string;
}

export interface AppState {
  booted: boolean;
  services: ServiceInfo[];
  servicesError: string | null;
  schemas: Record<string, SchemaEntry>;
  session: SessionView | null;
  /** Set when the server replaced our session: what was lost can be reloaded. */
  expired: { sources: SourceRecord[]; reason: LostReason } | null;
  sources: SourceRecord[];
  route: Route;
  toasts: Toast[];
  /** Upload payloads of this page, so an expired session can replay them. */
}

let state: AppState = {
  booted: false,
  services: [],
  servicesError: null,
  schemas: {},
  session: null,
  expired: null,
  sources: loadSources(),
  route: parseRoute(window.location.hash),
  toasts: [],
};

const listeners = new Set<() => void>();

export function getState(): AppState {
  return state;
}

export function setState(patch: Partial<AppState> | ((s: AppState) => Partial<AppState>)): void {
  const p = typeof patch === "function" ? patch(state) : patch;
  state = { ...state, ...p };
  for (const fn of listeners) fn();
}

export function useAppState(): AppState {
  const [, force] = useState(0);
  useEffect(() => {
    const fn = () => force((n) => n + 1);
    listeners.add(fn);
    return () => {
      listeners.delete(fn);
    };
  }, []);
  return state;
}

let toastId = 0;
export function toast(text: string, kind: Toast["kind"] = "info", ms = 3500): void {
  const id = ++toastId;
  setState((s) => ({ toasts: [...s.toasts, { id, kind, text }] }));
  window.setTimeout(() => setState((s) => ({ toasts: s.toasts.filter((t) => t.id !== id) })), ms);
}

// Uploaded files are kept in memory (not in storage: they can be large) so that
// an expired session can load them again with one click while the page lives.
const uploadPayloads = new Map<number, MessageInitShape<typeof LoadProtosRequestSchema>>();

window.addEventListener("hashchange", () => setState({ route: parseRoute(window.location.hash) }));

session.onActivity((at) => {
  if (state.session) state = { ...state, session: { ...state.session, lastActivity: at } };
});

session.subscribe((e) => {
  if (e.kind === "expired") {
    const lost = state.sources;
    saveSources([]);
    setState({
      expired: { sources: lost, reason: e.reason },
      sources: [],
      services: [],
      schemas: {},
    });
    void refreshServices();
    void refreshSession();
  }
});

export async function refreshSession(): Promise<void> {
  try {
    const s = await catalog.getSession({});
    setState({
      session: {
        id: s.sessionId,
        expiresAt: s.expiresAt ? timestampDate(s.expiresAt).getTime() : null,
        createdAt: s.createdAt ? timestampDate(s.createdAt).getTime() : null,
        ttlSeconds: Number(s.ttlSeconds),
        fileCount: s.fileCount,
        serviceCount: s.serviceCount,
        lastActivity: Date.now(),
      },
    });
  } catch {
    // The session chip just stays as it was; calls that matter report their own errors.
  }
}

export async function refreshServices(): Promise<void> {
  try {
    const res = await catalog.listServices({});
    setState({ services: res.services, servicesError: null });
  } catch (e) {
    setState({ servicesError: errorText(e) });
  }
}

export async function boot(): Promise<void> {
  // GetSession first and alone, so that every later call shares the session it returns.
  await refreshSession();
  await refreshServices();
  setState({ booted: true });
}

export async function ensureSchema(service: string, force = false): Promise<SchemaEntry> {
  const have = state.schemas[service];
  if (have && !force && have.status !== "error") return have;
  setState((s) => ({ schemas: { ...s.schemas, [service]: { status: "loading" } } }));
  let entry: SchemaEntry;
  try {
    const res = await catalog.getServiceSchema({ serviceName: service });
    entry = res.error
      ? { status: "error", error: res.error }
      : { status: "ready", service: res.service, set: new SchemaSet(res.messageSchemas) };
  } catch (e) {
    entry = { status: "error", error: errorText(e) };
  }
  setState((s) => ({ schemas: { ...s.schemas, [service]: entry } }));
  return entry;
}

function requestFor(spec: SourceSpec): MessageInitShape<typeof LoadProtosRequestSchema> {
  switch (spec.kind) {
    case "path":
      return { source: { case: "protoPath", value: spec.value } };
    case "repo":
      return { source: { case: "protoRepo", value: spec.value } };
    case "buf":
      return { source: { case: "bufModule", value: spec.value } };
    case "reflect":
      return {
        source: { case: "reflectionEndpoint", value: spec.value },
        reflectionOptions: { useTls: spec.useTls, serverName: spec.serverName, timeoutSeconds: 10 },
      };
    case "upload":
      throw new Error("uploads carry their own request");
  }
}

/**
 * Loads one source into the session. Returns the response (success or not);
 * throws only when the catalog itself could not be reached or refused the request.
 */
export async function loadSource(
  spec: SourceSpec,
  upload?: MessageInitShape<typeof LoadProtosRequestSchema>,
): Promise<LoadProtosResponse> {
  const req = upload ?? requestFor(spec);
  const res = await catalog.loadProtos(req as LoadProtosRequest);
  if (res.success) {
    const record: SourceRecord = {
      spec,
      at: Date.now(),
      services: [...res.loadedServices],
      fileCount: res.fileCount,
    };
    if (upload) uploadPayloads.set(record.at, upload);
    const sources = [...state.sources.filter((r) => JSON.stringify(r.spec) !== JSON.stringify(spec)), record];
    saveSources(sources);
    setState({ sources, schemas: {}, expired: null });
    await refreshServices();
    void refreshSession();
  }
  return res;
}

/** Loads again what an expired session had loaded. */
export async function reloadLostSources(): Promise<{ ok: number; failed: string[] }> {
  const lost = state.expired?.sources ?? [];
  let ok = 0;
  const failed: string[] = [];
  for (const r of lost) {
    const payload = r.spec.kind === "upload" ? uploadPayloads.get(r.at) : undefined;
    if (r.spec.kind === "upload" && !payload) {
      failed.push(`${r.spec.value} (upload it again)`);
      continue;
    }
    try {
      const res = await loadSource(r.spec, payload);
      if (res.success) ok++;
      else failed.push(`${r.spec.value}: ${res.error}`);
    } catch (e) {
      failed.push(`${r.spec.value}: ${errorText(e)}`);
    }
  }
  setState({ expired: null });
  return { ok, failed };
}

export async function closeSession(): Promise<void> {
  try {
    await catalog.closeSession({});
  } catch {
    // Nothing to do: the session is forgotten locally either way.
  }
  session.forget();
  saveSources([]);
  setState({ services: [], schemas: {}, sources: [], expired: null, session: null });
  await refreshSession();
  await refreshServices();
}
