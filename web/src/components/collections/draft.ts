// The bridge between the method page's request form (TryIt) and collections: TryIt
// publishes the request as edited (target, transport, metadata, messages, TLS choices),
// so "Save" keeps the draft without calling it first; opening a saved request hands the
// whole request to the form (the link alone carries only messages, endpoint, transport).
import { useEffect, useState } from "preact/hooks";
import type { SavedRequest } from "../../gen/catalog/v1/collections_pb";
import { defaultTarget, type TargetSettings, type TlsFiles } from "../../lib/target";

/** The request on the method page, as the form holds it now. */
export interface RequestDraft {
  service: string;
  method: string;
  target: TargetSettings;
  /** The messages a call would send: all of a client stream's, else the first. */
  messages: string[];
  caCertPem: string;
}

export interface DraftForm extends RequestDraft {
  setTarget: (t: TargetSettings) => void;
  setMessages: (messages: string[]) => void;
  tls: TlsFiles;
  setTls: (f: TlsFiles) => void;
}

let current: RequestDraft | null = null;
let pending: { request: SavedRequest; seq: number } | null = null; // opened, waiting for its method's form
let opens = 0;
const listeners = new Set<() => void>();

function publish(next: RequestDraft | null): void {
  current = next;
  for (const fn of listeners) fn();
}

/** The request being edited on the method page (null away from one). */
export function useRequestDraft(): RequestDraft | null {
  const [, tick] = useState(0);
  useEffect(() => {
    const fn = () => tick((n) => n + 1);
    listeners.add(fn);
    return () => void listeners.delete(fn);
  }, []);
  return current;
}

/** Open a saved request in its method's form (applied when that form shows). */
export function openInForm(r: SavedRequest): void {
  pending = { request: r, seq: ++opens }; // the same request opened again applies again
  for (const fn of listeners) fn();
}

/** Used once by the form: publishes its draft and takes in an opened saved request. */
export function useDraftBridge(form: DraftForm): void {
  const { service, method, target, messages, caCertPem } = form;
  const [, tick] = useState(0);
  useEffect(() => {
    const fn = () => tick((n) => n + 1);
    listeners.add(fn);
    return () => void listeners.delete(fn);
  }, []);
  const opened = pending && pending.request.service === service && pending.request.method === method ? pending : null;
  useEffect(() => {
    if (!opened) return;
    pending = null;
    const r = opened.request;
    form.setTarget(savedTarget(r, target));
    form.setMessages(r.requestMessagesJson.length ? [...r.requestMessagesJson] : ["{}"]);
    form.setTls({ ...form.tls, caCertPem: r.tls?.caCertPem ?? "" });
  }, [opened?.seq]);
  useEffect(() => {
    publish({ service, method, target, messages, caCertPem });
  }, [service, method, target, messages.join("\u0000"), caCertPem]);
  useEffect(() => () => publish(null), []);
}

/** The form's target for a saved request (what the saved request does not say is kept). */
function savedTarget(r: SavedRequest, was: TargetSettings): TargetSettings {
  const tls = r.tls;
  return {
    ...defaultTarget(),
    ...was,
    endpoint: r.endpoint,
    transport: r.transport,
    metadata: Object.entries(r.metadata).map(([key, value]) => ({ key, value, enabled: true })),
    useTls: tls?.useTls ?? false,
    serverName: tls?.serverName ?? "",
    insecureSkipVerify: tls?.insecureSkipVerify ?? false,
    timeoutSeconds: r.timeoutSeconds,
    connectCodec: r.connectCodec === "json" ? "json" : "proto",
  };
}

/** What a draft puts into a saved request: where, how and what it would send. */
export function fromDraft(d: RequestDraft) {
  const t = d.target;
  return {
    service: d.service,
    method: d.method,
    endpoint: t.endpoint.trim(),
    transport: t.transport,
    metadata: Object.fromEntries(t.metadata.filter((m) => m.enabled && m.key.trim()).map((m) => [m.key.trim(), m.value])),
    requestMessagesJson: d.messages,
    tls: { useTls: t.useTls, serverName: t.serverName.trim(), insecureSkipVerify: t.insecureSkipVerify, caCertPem: t.useTls ? d.caCertPem : "" },
    timeoutSeconds: t.timeoutSeconds,
    connectCodec: t.connectCodec,
  };
}
