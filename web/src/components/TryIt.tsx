import type { TargetedEvent } from "preact";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { catalog, errorText, isAbort } from "../api/client";
import { Transport, type InvokeStreamEvent, type MethodInfo, type ServiceInfo } from "../gen/catalog/v1/catalog_pb";
import { bufCurlCommand, commandTools, curlCommand, grpcurlCommand, schemaFile, type CallSpec } from "../lib/commands";
import { formatMs, relativeTime } from "../lib/format";
import { Slicer } from "../lib/messageLog";
import { addHistory, clearHistory, loadHistory, methodKey, type HistoryEntry } from "../lib/history";
import { shareHash, type Route } from "../lib/route";
import { encodeSource, sourceOfService } from "../lib/sources";
import { statusName } from "../lib/status";
import {
  defaultTarget,
  getTlsFiles,
  loadTarget,
  metadataMap,
  saveTarget,
  setTlsFiles,
  transportLabel,
  TRANSPORTS,
  type TargetSettings,
  type TlsFiles,
} from "../lib/target";
import type { SchemaSet } from "../schema/types";
import { refreshSession, toast, useAppState } from "../state/store";
import { IconClock, IconLink, IconPlay, IconPlus, IconStop, IconTrash } from "./icons";
import { checkMessage, exampleText, RequestEditor, ruleRefusal, serverRuleRefusal, type EditorMode } from "./RequestEditor";
import { rulePolicy } from "../schema/validate";
import { emptyResult, ResponseView, type CallResult } from "./ResponseView";
import { CopyButton, methodKind, Tabs } from "./ui";
import { copyText } from "../lib/format";
import { useDraftBridge } from "./collections/draft";

interface Draft {
  messages: string[];
  active: number;
}

// Edits survive navigating between methods while the page lives.
const drafts = new Map<string, Draft>();

function compact(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text));
  } catch {
    return text;
  }
}

function initialTarget(service: ServiceInfo, route: Route, reflectEndpoint: string | null): TargetSettings {
  const saved = loadTarget(service.name);
  let t = saved ?? defaultTarget();
  if (!saved && service.defaultTarget?.endpoint) {
    const d = service.defaultTarget;
    t = { ...t, endpoint: d.endpoint, transport: d.transport, useTls: d.useTls, serverName: d.serverName };
  } else if (!saved && reflectEndpoint) {
    t = { ...t, endpoint: reflectEndpoint };
  }
  if (route.page === "method") {
    if (route.endpoint) t = { ...t, endpoint: route.endpoint };
    const tr = TRANSPORTS.find((x) => transportLabel(x.value).toLowerCase() === route.transport?.toLowerCase());
    if (tr) t = { ...t, transport: tr.value };
  }
  return t;
}

export function TryIt({ service, method, set }: { service: ServiceInfo; method: MethodInfo; set: SchemaSet }) {
  const { route, sources } = useAppState();
  const key = methodKey(service.name, method.name);
  const kind = methodKind(method);
  const multi = method.clientStreaming;
  const streaming = method.clientStreaming || method.serverStreaming;
  const located = useMemo(() => set.message(method.inputType), [set, method.inputType]);
  const source = sourceOfService(sources, service.name);

  const [target, setTargetState] = useState<TargetSettings>(() =>
    initialTarget(service, route, source?.kind === "reflect" ? source.value : null),
  );
  const [draft, setDraft] = useState<Draft>(() => {
    if (route.page === "method" && route.requests?.length) return { messages: route.requests, active: 0 };
    return drafts.get(key) ?? { messages: [exampleText(set, located)], active: 0 };
  });
  const [mode, setMode] = useState<EditorMode>("form");
  const [result, setResult] = useState<CallResult | null>(null);
  const [history, setHistory] = useState<HistoryEntry[]>(() => loadHistory(key));
  const [showMeta, setShowMeta] = useState(target.metadata.length > 0);
  const [tls, setTlsState] = useState<TlsFiles>(() => getTlsFiles(service.name));
  const [showTls, setShowTls] = useState(false);
  const setTls = (f: TlsFiles) => {
    setTlsState(f);
    setTlsFiles(service.name, f);
  };
  const abortRef = useRef<AbortController | null>(null);
  const liveRef = useRef<{ id: string; sent: string[]; cur: { value: CallResult } } | null>(null);
  const responseRef = useRef<HTMLDivElement>(null);
  const sendRef = useRef<() => void>(() => undefined);

  useEffect(() => {
    drafts.set(key, draft);
  }, [key, draft]);

  useEffect(
    () => () => {
      const live = liveRef.current;
      if (live) void catalog.cancelCall({ callId: live.id }).catch(() => undefined);
      abortRef.current?.abort();
    },
    [],
  );

  const setTarget = (t: TargetSettings) => {
    setTargetState(t);
    saveTarget(service.name, t);
  };
  // Collections save this draft as edited and open saved requests into it.
  const sendable = multi ? draft.messages : draft.messages.slice(0, 1);
  useDraftBridge({ service: service.name, method: method.name, target, messages: sendable, caCertPem: tls.caCertPem, setTarget, setMessages: (messages) => setDraft({ messages, active: 0 }), tls, setTls });

  const spec = (): CallSpec => ({
    service: service.name,
    method: method.name,
    clientStreaming: method.clientStreaming,
    serverStreaming: method.serverStreaming,
    requests: (multi ? draft.messages : draft.messages.slice(0, 1)).map(compact),
    target,
    source,
  });

  const baseOf = (tgt: TargetSettings) => ({
    endpoint: tgt.endpoint.trim(),
    service: service.name,
    method: method.name,
    useTls: tgt.useTls,
    serverName: tgt.serverName.trim(),
    timeoutSeconds: tgt.timeoutSeconds,
    metadata: metadataMap(tgt.metadata),
    transport: tgt.transport,
    connectCodec: tgt.transport === Transport.CONNECT ? tgt.connectCodec : "",
    insecureSkipVerify: tgt.useTls && tgt.insecureSkipVerify,
    caCertPem: tgt.useTls ? tls.caCertPem : "",
    clientCertPem: tgt.useTls ? tls.clientCertPem : "",
    clientKeyPem: tgt.useTls ? tls.clientKeyPem : "",
    // "Send anyway" also sends messages whose proto2 `required` fields are missing.
    sendPartial: rulePolicy.sendAnyway,
  });

  /** Bring the result into view and keep focus somewhere useful (not <body>). */
  const reveal = () => {
    requestAnimationFrame(() => {
      const box = responseRef.current;
      if (!box) return;
      const r = box.getBoundingClientRect();
      if (r.top > window.innerHeight - 80 || r.bottom < 0) box.scrollIntoView({ block: "start", behavior: "smooth" });
      if (document.activeElement === document.body || !document.activeElement) {
        (box.querySelector("#call-status, .status-badge") as HTMLElement | null)?.focus({ preventScroll: true });
      }
    });
  };

  /** Read a call's events into `cur` (messages into its log, batched per frame). */
  const readEvents = async (events: AsyncIterable<InvokeStreamEvent>, cur: { value: CallResult }, ctrl: AbortController, start: number) => {
    const update = (patch: Partial<CallResult>) => {
      cur.value = { ...cur.value, ...patch };
      setResult(cur.value);
    };
    const log = cur.value.log;
    const slicer = new Slicer();
    try {
      for await (const ev of events) {
        const e = ev.event;
        if (e.case === "message") {
          log?.push(e.value.json, e.value.elapsedMs, e.value.index);
          // A burst arrives many messages per network chunk, all in microtasks: give the
          // browser a frame every few milliseconds so it paints and takes input.
          await slicer.pause();
        }
        else if (e.case === "headers") update({ headers: e.value.headers.map(({ key: k, value }) => ({ key: k, value })) });
        else if (e.case === "status") {
          const s = e.value;
          update({
            done: true,
            success: s.success,
            statusCode: s.statusCode,
            statusName: statusName(s.statusCode, s.statusName),
            statusMessage: s.statusMessage,
            error: s.error,
            trailers: s.trailers.map(({ key: k, value }) => ({ key: k, value })),
            errorDetailsJson: s.errorDetailsJson,
            durationMs: s.durationMs || performance.now() - start,
          });
        }
      }
      log?.flush();
      update({ running: false, done: true, durationMs: cur.value.durationMs || performance.now() - start });
    } catch (e) {
      log?.flush();
      if (isAbort(e) || ctrl.signal.aborted) {
        update({ running: false, done: true, cancelled: true, success: false, statusCode: 1, statusName: "CANCELLED", statusMessage: "cancelled by you", durationMs: performance.now() - start });
      } else {
        update({ running: false, done: true, catalogError: errorText(e), durationMs: performance.now() - start });
      }
    }
  };

  const remember = (final: CallResult, tgt: TargetSettings, sent: string[]) => {
    if (!final.catalogError) {
      setHistory(
        addHistory(key, {
          id: `${Date.now()}-${Math.random().toString(36).slice(2, 8)}`,
          at: Date.now(),
          requests: sent,
          target: tgt,
          statusCode: final.statusCode,
          statusName: final.statusName,
          durationMs: final.durationMs,
          messageCount: final.log ? final.log.total : undefined,
        }),
      );
    }
    void refreshSession();
  };

  const send = async (override?: { messages: string[]; target: TargetSettings }) => {
    if (result?.running) return;
    const tgt = override?.target ?? target;
    const msgs = override?.messages ?? draft.messages;
    const toSend = multi ? msgs : msgs.slice(0, 1);
    for (let i = 0; i < toSend.length; i++) {
      const c = checkMessage(set, located, toSend[i]);
      if (c.syntax) {
        setMode("json");
        setDraft({ messages: msgs, active: i });
        toast(`Fix the JSON of ${multi ? `message #${i + 1}` : "the request"} first: ${c.syntax.message}`, "error", 6000);
        return;
      }
      const refused = ruleRefusal(c, multi ? `message #${i + 1}` : "the request");
      if (refused) {
        setDraft({ messages: msgs, active: i });
        toast(refused, "error", 8000);
        return;
      }
    }
    const byRules = await serverRuleRefusal(method.inputType, toSend, multi);
    if (byRules) {
      toast(byRules, "error", 8000);
      return;
    }
    const base = baseOf(tgt);
    const requests = toSend.map(compact);
    const start = performance.now();
    let final: CallResult;
    reveal();
    if (!streaming) {
      setResult(emptyResult(false));
      try {
        const r = await catalog.invokeGRPC({ ...base, requestJson: requests[0] ?? "" });
        performance.mark("catalog:response");
        final = {
          ...emptyResult(false),
          running: false,
          done: true,
          success: r.success,
          statusCode: r.statusCode,
          statusName: statusName(r.statusCode, r.statusName),
          statusMessage: r.statusMessage,
          error: r.error,
          durationMs: r.durationMs || performance.now() - start,
          headers: r.responseHeaders.length ? r.responseHeaders.map(({ key: k, value }) => ({ key: k, value })) : Object.entries(r.metadata).map(([k, value]) => ({ key: k, value })),
          trailers: r.responseTrailers.map(({ key: k, value }) => ({ key: k, value })),
          body: r.responseJson,
          errorDetailsJson: r.errorDetailsJson,
        };
      } catch (e) {
        final = { ...emptyResult(false), running: false, done: true, catalogError: errorText(e), durationMs: performance.now() - start };
      }
      setResult(final);
    } else {
      const ctrl = new AbortController();
      abortRef.current = ctrl;
      const cur = { value: emptyResult(true) };
      setResult(cur.value);
      await readEvents(catalog.invokeStream({ ...base, requestMessagesJson: requests }, { signal: ctrl.signal }), cur, ctrl, start);
      abortRef.current = null;
      final = cur.value;
    }
    remember(final, tgt, toSend);
  };

  // -- live calls: send one message at a time while the stream is open -------------

  const startLive = async () => {
    if (result?.running) return;
    const tgt = target;
    const start = performance.now();
    const ctrl = new AbortController();
    abortRef.current = ctrl;
    const cur = { value: emptyResult(true) };
    setResult(cur.value);
    reveal();
    let callId: string;
    try {
      callId = (await catalog.startCall({ call: { ...baseOf(tgt), requestMessagesJson: [] } })).callId;
    } catch (e) {
      cur.value = { ...cur.value, running: false, done: true, catalogError: errorText(e), durationMs: performance.now() - start };
      setResult(cur.value);
      abortRef.current = null;
      return;
    }
    liveRef.current = { id: callId, sent: [], cur };
    setLive(cur, { sent: 0, halfClosed: false });
    await readEvents(catalog.watchCall({ callId }, { signal: ctrl.signal }), cur, ctrl, start);
    const sent = liveRef.current?.sent ?? [];
    liveRef.current = null;
    abortRef.current = null;
    remember(cur.value, tgt, sent);
  };

  const setLive = (cur: { value: CallResult }, live: CallResult["live"]) => {
    cur.value = { ...cur.value, live };
    setResult(cur.value);
  };

  const liveSend = async () => {
    const live = liveRef.current;
    if (!live) return;
    const text = draft.messages[draft.active] ?? "";
    const c = checkMessage(set, located, text);
    if (c.syntax) {
      setMode("json");
      toast(`Fix the JSON of message #${draft.active + 1} first: ${c.syntax.message}`, "error", 6000);
      return;
    }
    try {
      const r = await catalog.sendMessage({ callId: live.id, messageJson: compact(text) });
      live.sent.push(text);
      setLive(live.cur, { sent: r.sentCount, halfClosed: live.cur.value.live?.halfClosed ?? false });
    } catch (e) {
      toast(`Not sent: ${errorText(e)}`, "error", 6000);
    }
  };

  const liveClose = async () => {
    const live = liveRef.current;
    if (!live) return;
    try {
      const r = await catalog.closeSend({ callId: live.id });
      setLive(live.cur, { sent: r.sentCount, halfClosed: true });
    } catch (e) {
      toast(errorText(e), "error", 6000);
    }
  };

  const cancel = () => {
    const live = liveRef.current;
    if (live) {
      // The watcher then reads the CANCELLED status the catalog sends.
      void catalog.cancelCall({ callId: live.id }).catch(() => abortRef.current?.abort());
      return;
    }
    abortRef.current?.abort();
  };

  sendRef.current = () => void (liveRef.current ? liveSend() : send());

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        sendRef.current();
      }
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, []);

  const share = async () => {
    const hash = shareHash({
      service: service.name,
      method: method.name,
      requests: spec().requests.map((r) => {
        try {
          return JSON.parse(r) as unknown;
        } catch {
          return {};
        }
      }),
      multi,
      endpoint: target.endpoint.trim() || undefined,
      transport: transportLabel(target.transport).toLowerCase(),
      source: source ? encodeSource(source) : null,
    });
    const url = `${window.location.origin}${window.location.pathname}${hash}`;
    window.history.replaceState(null, "", hash);
    const ok = await copyText(url);
    toast(ok ? "Link copied: it opens this method with this request" : "Link is in the address bar", ok ? "success" : "info");
  };

  const rerun = (h: HistoryEntry, run: boolean) => {
    const t = { ...defaultTarget(), ...h.target };
    setTarget(t);
    const next = { messages: h.requests.length ? h.requests : [exampleText(set, located)], active: 0 };
    setDraft(next);
    if (run) void send({ messages: next.messages, target: t });
  };

  const onSubmit = (e: TargetedEvent<HTMLFormElement>) => {
    e.preventDefault();
    void send();
  };

  const explain = TRANSPORTS.find((t) => t.value === target.transport)?.explain ?? "";
  const streamUnsupported =
    method.clientStreaming && target.transport === Transport.GRPC_WEB
      ? "gRPC-Web cannot stream requests from a client: use gRPC or Connect."
      : null;

  return (
    <section class="card tryit" aria-labelledby="tryit-title">
      <div class="card-head row">
        <h2 id="tryit-title">Try it</h2>
        <span class="muted small">
          {kind === "unary" ? "One request, one response." : kind === "server" ? "One request; responses stream in as they arrive." : kind === "client" ? "Send several request messages; one response." : "Send several request messages; responses stream back."}
        </span>
      </div>
      <form class="tryit-form" onSubmit={onSubmit} aria-label={`Call ${method.name}`}>
        <fieldset class="target">
          <legend class="sr-only">Target server</legend>
          <div class="target-row">
            <label class="field grow">
              <span class="field-label">Endpoint</span>
              <input
                type="text"
                name="endpoint"
                data-testid="endpoint"
                spellcheck={false}
                placeholder={service.defaultTarget?.endpoint || "localhost:50051"}
                title="host:port, or a URL such as https://api.example.com/prefix"
                value={target.endpoint}
                onInput={(e) => setTarget({ ...target, endpoint: e.currentTarget.value })}
              />
            </label>
            <div class="field">
              <span class="field-label" id="transport-label">
                Transport
              </span>
              <div class="segmented" role="radiogroup" aria-labelledby="transport-label">
                {TRANSPORTS.map((t) => (
                  <label class={`segment ${target.transport === t.value ? "is-active" : ""}`} title={t.explain}>
                    <input
                      type="radio"
                      name="transport"
                      class="visually-hidden"
                      value={t.label}
                      checked={target.transport === t.value}
                      onChange={() => setTarget({ ...target, transport: t.value })}
                    />
                    <span>{t.label}</span>
                  </label>
                ))}
              </div>
            </div>
          </div>
          <p class="field-help transport-help">{explain}</p>
          {streamUnsupported && <p class="warn-text small">{streamUnsupported}</p>}
          <div class="target-row target-options">
            <label class="check">
              <input type="checkbox" checked={target.useTls} onChange={(e) => setTarget({ ...target, useTls: e.currentTarget.checked })} />
              <span>TLS</span>
            </label>
            <label class="field field-inline">
              <span class="field-label">Server name</span>
              <input
                type="text"
                class="input-md"
                spellcheck={false}
                disabled={!target.useTls}
                placeholder="(from endpoint)"
                value={target.serverName}
                onInput={(e) => setTarget({ ...target, serverName: e.currentTarget.value })}
              />
            </label>
            <label class="field field-inline">
              <span class="field-label">Timeout</span>
              <input
                type="number"
                class="input-short"
                min={1}
                max={3600}
                value={target.timeoutSeconds}
                onInput={(e) => setTarget({ ...target, timeoutSeconds: Math.max(0, Number(e.currentTarget.value) || 0) })}
              />
              <span class="muted small">s</span>
            </label>
            {target.transport === Transport.CONNECT && (
              <label class="field field-inline">
                <span class="field-label">Codec</span>
                <select class="select-sm" value={target.connectCodec} onChange={(e) => setTarget({ ...target, connectCodec: e.currentTarget.value as "proto" | "json" })}>
                  <option value="proto">binary (proto)</option>
                  <option value="json">JSON</option>
                </select>
              </label>
            )}
            <button type="button" class="btn btn-ghost btn-sm" aria-expanded={showMeta} onClick={() => setShowMeta(!showMeta)}>
              Metadata ({target.metadata.filter((m) => m.enabled && m.key.trim()).length})
            </button>
            {target.useTls && (
              <button type="button" class="btn btn-ghost btn-sm" aria-expanded={showTls} onClick={() => setShowTls(!showTls)}>
                TLS options{tls.clientCertPem || tls.caCertPem || target.insecureSkipVerify ? " •" : ""}
              </button>
            )}
          </div>
          {showMeta && <MetadataEditor target={target} setTarget={setTarget} />}
          {showTls && target.useTls && <TlsEditor target={target} setTarget={setTarget} tls={tls} setTls={setTls} />}
        </fieldset>

        <div class="request-head">
          <h3>
            Request <span class="mono muted small">{method.inputType}</span>
          </h3>
        </div>
        <RequestEditor
          set={set}
          located={located}
          typeName={method.inputType}
          messages={draft.messages}
          active={draft.active}
          onChange={(messages, active) => setDraft({ messages, active })}
          multi={multi}
          mode={mode}
          onMode={setMode}
          idPrefix="req"
        />

        <div class="send-row">
          {result?.running && result.live ? (
            <>
              <button key="live-send" type="button" class="btn btn-primary" data-testid="live-send" disabled={result.live.halfClosed} onClick={() => void liveSend()}>
                <IconPlay /> <span>Send message #{draft.active + 1}</span>
              </button>
              <button key="live-close" type="button" class="btn btn-secondary" data-testid="live-close" disabled={result.live.halfClosed} onClick={() => void liveClose()}>
                <span>Close sending</span>
              </button>
              <button key="cancel" type="button" class="btn btn-danger" onClick={cancel}>
                <IconStop /> <span>Cancel</span>
              </button>
            </>
          ) : result?.running && streaming ? (
            // Distinct keys: the Send (submit) button must never be this same element, or the
            // click that cancels would, once re-rendered, submit the form and start a new call.
            <button key="cancel" type="button" class="btn btn-danger" onClick={cancel}>
              <IconStop /> <span>Cancel</span>
            </button>
          ) : (
            <>
              <button key="send" type="submit" class="btn btn-primary btn-send" disabled={result?.running} data-testid="send">
                <IconPlay /> <span>{result?.running ? "Calling…" : multi ? `Send ${draft.messages.length} message${draft.messages.length === 1 ? "" : "s"}` : "Send"}</span>
              </button>
              {multi && !streamUnsupported && (
                <button
                  key="live"
                  type="button"
                  class="btn btn-secondary"
                  data-testid="live-start"
                  disabled={result?.running}
                  title="Open the stream, then send messages one at a time and see the responses as they come"
                  onClick={() => void startLive()}
                >
                  <span>Start live call</span>
                </button>
              )}
            </>
          )}
          <span class="muted small kbd-hint">
            <kbd>Ctrl</kbd>/<kbd>⌘</kbd>+<kbd>Enter</kbd>
          </span>
          <span class="status-spacer" />
          <button type="button" class="btn btn-ghost btn-sm" onClick={share} title="Copy a link that opens this method with this request">
            <IconLink /> <span>Share link</span>
          </button>
        </div>
      </form>

      <ResponseView result={result} onCancel={cancel} boxRef={responseRef} />
      <CommandPanel spec={spec()} />
      <HistoryPanel history={history} onRun={rerun} onClear={() => { clearHistory(key); setHistory([]); }} />
    </section>
  );
}

function MetadataEditor({ target, setTarget }: { target: TargetSettings; setTarget: (t: TargetSettings) => void }) {
  const rows = target.metadata;
  const update = (i: number, patch: Partial<TargetSettings["metadata"][number]>) =>
    setTarget({ ...target, metadata: rows.map((r, j) => (j === i ? { ...r, ...patch } : r)) });
  return (
    <div class="metadata">
      <p class="field-help">Sent as request headers. Keys ending in <code>-bin</code> take base64 values.</p>
      {rows.map((r, i) => (
        <div class="meta-row">
          <input type="checkbox" aria-label={`Send header ${r.key || i + 1}`} checked={r.enabled} onChange={(e) => update(i, { enabled: e.currentTarget.checked })} />
          <input type="text" class="mono" aria-label={`Header ${i + 1} name`} placeholder="authorization" spellcheck={false} value={r.key} onInput={(e) => update(i, { key: e.currentTarget.value })} />
          <input type="text" class="mono grow" aria-label={`Header ${i + 1} value`} placeholder="Bearer …" spellcheck={false} value={r.value} onInput={(e) => update(i, { value: e.currentTarget.value })} />
          <button type="button" class="btn btn-ghost btn-icon btn-sm" aria-label={`Remove header ${r.key || i + 1}`} onClick={() => setTarget({ ...target, metadata: rows.filter((_, j) => j !== i) })}>
            <IconTrash />
          </button>
        </div>
      ))}
      <button type="button" class="btn btn-ghost btn-sm" onClick={() => setTarget({ ...target, metadata: [...rows, { key: "", value: "", enabled: true }] })}>
        <IconPlus /> <span>Add header</span>
      </button>
    </div>
  );
}

function PemField({ label, value, onChange, placeholder }: { label: string; value: string; onChange: (v: string) => void; placeholder: string }) {
  return (
    <label class="field">
      <span class="field-label">{label}</span>
      <textarea class="mono pem" rows={2} spellcheck={false} placeholder={placeholder} value={value} onInput={(e) => onChange(e.currentTarget.value)} />
      <span class="inline-group">
        <label class="btn btn-ghost btn-sm">
          <input
            type="file"
            class="visually-hidden"
            accept=".pem,.crt,.cer,.key"
            onChange={async (e) => {
              const file = e.currentTarget.files?.[0];
              if (file) onChange(await file.text());
              e.currentTarget.value = "";
            }}
          />
          <span>From file…</span>
        </label>
      </span>
    </label>
  );
}

function TlsEditor(props: { target: TargetSettings; setTarget: (t: TargetSettings) => void; tls: TlsFiles; setTls: (f: TlsFiles) => void }) {
  const { target, setTarget, tls, setTls } = props;
  return (
    <div class="metadata tls-options">
      <label class="check">
        <input type="checkbox" checked={target.insecureSkipVerify} onChange={(e) => setTarget({ ...target, insecureSkipVerify: e.currentTarget.checked })} />
        <span>Accept any server certificate (self-signed development servers only)</span>
      </label>
      <PemField label="CA bundle (PEM)" placeholder="-----BEGIN CERTIFICATE----- … (empty: the system roots)" value={tls.caCertPem} onChange={(v) => setTls({ ...tls, caCertPem: v })} />
      <div class="pem-pair">
        <PemField label="Client certificate (PEM, mutual TLS)" placeholder="-----BEGIN CERTIFICATE-----" value={tls.clientCertPem} onChange={(v) => setTls({ ...tls, clientCertPem: v })} />
        <PemField label="Client key (PEM)" placeholder="-----BEGIN PRIVATE KEY-----" value={tls.clientKeyPem} onChange={(v) => setTls({ ...tls, clientKeyPem: v })} />
      </div>
      <p class="field-help">Certificates and keys stay in this page's memory; they are not saved in the browser.</p>
    </div>
  );
}

function CommandPanel({ spec }: { spec: CallSpec }) {
  const [choice, setTab] = useState("buf");
  const [open, setOpen] = useState(false);
  const tools = commandTools(spec);
  const tab = tools.some((t) => t.id === choice) ? choice : tools[0].id;
  const text = tab === "curl" ? curlCommand(spec) : tab === "buf" ? bufCurlCommand(spec) : grpcurlCommand(spec);
  const needsSchema = tab !== "curl" && spec.source?.kind !== "reflect";
  const download = async () => {
    try {
      const r = await catalog.exportDescriptorSet({ serviceName: spec.service });
      const url = URL.createObjectURL(new Blob([r.descriptorSet as BlobPart], { type: "application/octet-stream" }));
      const a = document.createElement("a");
      a.href = url;
      a.download = schemaFile(spec);
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (e) {
      toast(`Could not export the schema: ${errorText(e)}`, "error", 6000);
    }
  };
  return (
    <details class="disclosure" open={open} onToggle={(e) => setOpen((e.currentTarget as HTMLDetailsElement).open)}>
      <summary>Copy as command</summary>
      {open && (
        <div class="disclosure-body">
          <div class="row">
            <Tabs small label="Command line tool" idPrefix="cmd" active={tab} onChange={setTab} tabs={tools} />
            <span class="status-spacer" />
            {needsSchema && (
              <button type="button" class="btn btn-ghost btn-sm" data-testid="download-schema" onClick={() => void download()}>
                Download {schemaFile(spec)}
              </button>
            )}
            <CopyButton text={text} label="Copy command" />
          </div>
          <pre id="cmd-panel" role="tabpanel" aria-labelledby={`cmd-tab-${tab}`} class="code-block" data-testid="command" tabIndex={0}>
            {text}
          </pre>
        </div>
      )}
    </details>
  );
}

function HistoryPanel({ history, onRun, onClear }: { history: HistoryEntry[]; onRun: (h: HistoryEntry, run: boolean) => void; onClear: () => void }) {
  const [open, setOpen] = useState(history.length > 0);
  const hadEntries = useRef(history.length > 0);
  useEffect(() => {
    // Open the history the first time a call lands in it; after that the user decides.
    if (history.length > 0 && !hadEntries.current) setOpen(true);
    hadEntries.current = history.length > 0;
  }, [history.length]);
  return (
    <details class="disclosure history-panel" open={open} onToggle={(e) => setOpen((e.currentTarget as HTMLDetailsElement).open)}>
      <summary>
        History <span class="muted small">({history.length})</span>
      </summary>
      <div class="disclosure-body">
        {!history.length && <p class="muted small">Calls you make to this method are kept here, in this browser.</p>}
        <ul class="history">
          {history.map((h) => (
            <li class="history-item">
              <div class="history-top">
                <span class={`status-dot ${h.statusCode === 0 ? "ok" : "err"}`} aria-hidden="true" />
                <span class="mono small history-status">
                  {h.statusCode} {h.statusName}
                </span>
                <span class="muted small" title={new Date(h.at).toLocaleString()}>
                  <IconClock /> {relativeTime(h.at)}
                </span>
                <span class="muted small">{formatMs(h.durationMs)}</span>
                {h.messageCount !== undefined && <span class="muted small">{h.messageCount} msg</span>}
                <span class="status-spacer" />
                <button type="button" class="btn btn-ghost btn-sm" onClick={() => onRun(h, false)} aria-label={`Load into the editor: ${compact(h.requests[0] ?? "{}")}`}>
                  Load
                </button>
                <button type="button" class="btn btn-secondary btn-sm" onClick={() => onRun(h, true)} aria-label={`Run again: ${compact(h.requests[0] ?? "{}")}`}>
                  <IconPlay /> <span>Run again</span>
                </button>
              </div>
              <div class="history-bottom">
                <span class="history-req mono small" title={h.requests.join("\n")}>
                  {compact(h.requests[0] ?? "{}")}
                  {h.requests.length > 1 ? ` +${h.requests.length - 1} more` : ""}
                </span>
                <span class="history-target muted small">
                  {h.target.endpoint || "(default target)"} · {transportLabel(h.target.transport)}
                </span>
              </div>
            </li>
          ))}
        </ul>
        {history.length > 0 && (
          <button type="button" class="btn btn-ghost btn-sm" onClick={onClear}>
            Clear history
          </button>
        )}
      </div>
    </details>
  );
}
