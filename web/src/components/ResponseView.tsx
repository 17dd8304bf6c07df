import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import { formatMs, prettyJson } from "../lib/format";
import { statusHint, statusName } from "../lib/status";
import { CopyButton, Spinner, Tabs } from "./ui";

export interface HeaderKV {
  key: string;
  value: string;
}

export interface StreamedMessage {
  json: string;
  elapsedMs: number;
  index: number;
}

export interface CallResult {
  streaming: boolean;
  running: boolean;
  startedAt: number;
  /** Set when the call finished (upstream status known). */
  done: boolean;
  success: boolean;
  statusCode: number;
  statusName: string;
  statusMessage: string;
  error: string;
  durationMs: number;
  headers: HeaderKV[];
  trailers: HeaderKV[];
  body: string;
  messages: StreamedMessage[];
  errorDetailsJson: string;
  /** The catalog refused or failed the request itself (not the upstream). */
  catalogError: string;
  cancelled: boolean;
}

export function emptyResult(streaming: boolean): CallResult {
  return {
    streaming,
    running: true,
    startedAt: performance.now(),
    done: false,
    success: false,
    statusCode: 0,
    statusName: "",
    statusMessage: "",
    error: "",
    durationMs: 0,
    headers: [],
    trailers: [],
    body: "",
    messages: [],
    errorDetailsJson: "",
    catalogError: "",
    cancelled: false,
  };
}

function parseDetails(text: string): Record<string, unknown>[] {
  if (!text) return [];
  try {
    const v: unknown = JSON.parse(text);
    if (Array.isArray(v)) return v.filter((x): x is Record<string, unknown> => typeof x === "object" && x !== null);
    if (typeof v === "object" && v !== null) return [v as Record<string, unknown>];
  } catch {
    // shown raw below
  }
  return [];
}

export function ResponseView({ result, onCancel }: { result: CallResult | null; onCancel: () => void }) {
  const [tab, setTab] = useState("body");
  // A new call starts on its body; a failed one with error details opens them.
  useEffect(() => setTab("body"), [result?.startedAt]);
  const failedWithDetails = !!result && result.done && !result.success && !!result.errorDetailsJson;
  useEffect(() => {
    if (failedWithDetails && !result?.streaming) setTab("details");
  }, [failedWithDetails, result?.startedAt]);
  if (!result) {
    return (
      <div class="response response-empty" data-testid="response">
        <p class="muted">
          Press <strong>Send</strong> (or <kbd>Ctrl</kbd>+<kbd>Enter</kbd>) to call the method. The response, its headers and trailers
          appear here.
        </p>
      </div>
    );
  }
  const details = parseDetails(result.errorDetailsJson);
  const code = result.statusCode;
  const name = result.catalogError ? "CATALOG ERROR" : statusName(code, result.statusName);
  const ok = result.done && result.success && !result.catalogError;
  const tabs = [
    { id: "body", label: result.streaming ? `Messages (${result.messages.length})` : "Body" },
    { id: "headers", label: `Headers (${result.headers.length})` },
    { id: "trailers", label: `Trailers (${result.trailers.length})` },
    ...(details.length || result.errorDetailsJson ? [{ id: "details", label: `Error details (${details.length || 1})` }] : []),
  ];
  const active = tabs.some((t) => t.id === tab) ? tab : "body";
  const hint = !ok && result.done && !result.catalogError ? statusHint(code) : null;

  let panel: ComponentChildren;
  if (active === "headers") panel = <HeaderTable rows={result.headers} empty="No response headers." />;
  else if (active === "trailers") panel = <HeaderTable rows={result.trailers} empty="No trailers." />;
  else if (active === "details") panel = <ErrorDetails details={details} raw={result.errorDetailsJson} />;
  else if (result.streaming) panel = <StreamList result={result} />;
  else panel = <Body text={result.body} result={result} />;

  return (
    <div class="response" data-testid="response" aria-live="polite">
      <div class="status-bar">
        {result.running ? (
          <span class="status-badge is-running">
            <Spinner label="Calling" /> {result.streaming ? "Streaming…" : "Calling…"}
          </span>
        ) : (
          <span class={`status-badge ${ok ? "is-ok" : "is-error"}`} data-testid="status">
            {result.catalogError ? name : `${code} ${name}`}
          </span>
        )}
        {result.done && <span class="muted small" data-testid="duration">{formatMs(result.durationMs)}</span>}
        {result.streaming && <span class="muted small">{result.messages.length} message{result.messages.length === 1 ? "" : "s"}</span>}
        <span class="status-spacer" />
        {result.running && result.streaming && (
          <button type="button" class="btn btn-secondary btn-sm" onClick={onCancel}>
            Cancel
          </button>
        )}
        {!result.streaming && result.body && <CopyButton text={prettyJson(result.body)} label="Copy JSON" />}
        {result.streaming && result.messages.length > 0 && (
          <CopyButton text={() => `[\n${result.messages.map((m) => prettyJson(m.json)).join(",\n")}\n]`} label="Copy all" />
        )}
      </div>
      {(result.statusMessage || result.error || result.catalogError) && !ok && (
        <div class="status-message" role="alert">
          <p class="mono">{result.catalogError || result.statusMessage || result.error}</p>
          {result.error && result.statusMessage && !result.error.includes(result.statusMessage) && <p class="muted small">{result.error}</p>}
          {hint && <p class="muted small">{hint}</p>}
          {result.cancelled && <p class="muted small">You cancelled the call.</p>}
        </div>
      )}
      <Tabs tabs={tabs} active={active} onChange={setTab} label="Response" idPrefix="resp" small />
      <div id="resp-panel" role="tabpanel" aria-labelledby={`resp-tab-${active}`} class="response-panel" tabIndex={0}>
        {panel}
      </div>
    </div>
  );
}

function Body({ text, result }: { text: string; result: CallResult }) {
  if (result.running) return <p class="muted">Waiting for the response…</p>;
  if (!text) return <p class="muted">{result.success ? "Empty response message ({})." : "No response message."}</p>;
  return <JsonView text={prettyJson(text)} />;
}

/** Pretty JSON with light syntax colouring (no HTML injection: text nodes only). */
const HIGHLIGHT_LIMIT = 200_000;
const STREAM_SHOWN = 300;

export function JsonView({ text, testid = "response-json" }: { text: string; testid?: string }) {
  if (text.length > HIGHLIGHT_LIMIT) {
    // Large bodies stay fast: plain text, no per-token elements.
    return (
      <pre class="json-view" data-testid={testid}>
        <code>{text}</code>
      </pre>
    );
  }
  const tokens: ComponentChildren[] = [];
  const re = /("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g;
  let last = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m.index > last) tokens.push(text.slice(last, m.index));
    if (m[1] !== undefined) {
      tokens.push(<span class={m[2] ? "j-key" : "j-str"}>{m[1]}</span>);
      if (m[2]) tokens.push(m[2]);
    } else if (m[3] !== undefined) tokens.push(<span class="j-lit">{m[3]}</span>);
    else tokens.push(<span class="j-num">{m[4]}</span>);
    last = re.lastIndex;
  }
  if (last < text.length) tokens.push(text.slice(last));
  return (
    <pre class="json-view" data-testid={testid}>
      <code>{tokens}</code>
    </pre>
  );
}

function StreamList({ result }: { result: CallResult }) {
  if (!result.messages.length) {
    return <p class="muted">{result.running ? "Waiting for the first message…" : "The stream ended without messages."}</p>;
  }
  const hidden = Math.max(0, result.messages.length - STREAM_SHOWN);
  const shown = hidden ? result.messages.slice(hidden) : result.messages;
  return (
    <ol class="stream-list" data-testid="stream-messages">
      {hidden > 0 && (
        <li class="stream-waiting muted small">
          {hidden} earlier message{hidden === 1 ? "" : "s"} not shown (the last {STREAM_SHOWN} are); “Copy all” copies every one.
        </li>
      )}
      {shown.map((m) => (
        <li class="stream-item">
          <div class="stream-meta">
            <span class="mono">#{m.index + 1}</span>
            <span class="muted small">+{formatMs(m.elapsedMs)}</span>
            <CopyButton text={prettyJson(m.json)} label="Copy" />
          </div>
          <JsonView text={prettyJson(m.json)} testid="stream-message" />
        </li>
      ))}
      {result.running && (
        <li class="stream-waiting muted small">
          <Spinner label="Waiting for more messages" /> waiting for more…
        </li>
      )}
    </ol>
  );
}

function HeaderTable({ rows, empty }: { rows: HeaderKV[]; empty: string }) {
  if (!rows.length) return <p class="muted">{empty}</p>;
  return (
    <table class="kv-table">
      <thead>
        <tr>
          <th scope="col">Name</th>
          <th scope="col">Value</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((r) => (
          <tr>
            <td class="mono">{r.key}</td>
            <td class="mono break">{r.value}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function typeOf(d: Record<string, unknown>): string {
  const t = (d["@type"] ?? d.type ?? "") as string;
  return t.slice(t.lastIndexOf("/") + 1);
}

function ErrorDetails({ details, raw }: { details: Record<string, unknown>[]; raw: string }) {
  if (!details.length) return raw ? <JsonView text={prettyJson(raw)} testid="error-details" /> : <p class="muted">No error details.</p>;
  return (
    <div class="details" data-testid="error-details">
      {details.map((d) => {
        const type = typeOf(d);
        return (
          <section class="detail">
            <h4 class="mono">{type || "detail"}</h4>
            <DetailSummary type={type} d={d} />
            <JsonView text={JSON.stringify(d, null, 2)} testid="error-detail-json" />
          </section>
        );
      })}
    </div>
  );
}

function DetailSummary({ type, d }: { type: string; d: Record<string, unknown> }) {
  if (type === "google.rpc.BadRequest" && Array.isArray(d.fieldViolations)) {
    return (
      <ul class="detail-list">
        {(d.fieldViolations as { field?: string; description?: string }[]).map((v) => (
          <li>
            <span class="mono">{v.field}</span>: {v.description}
          </li>
        ))}
      </ul>
    );
  }
  if (type === "google.rpc.ErrorInfo") {
    return (
      <p>
        <span class="mono">{String(d.reason ?? "")}</span>
        {d.domain ? <span class="muted"> in {String(d.domain)}</span> : null}
      </p>
    );
  }
  if (type === "google.rpc.Help" && Array.isArray(d.links)) {
    return (
      <ul class="detail-list">
        {(d.links as { description?: string; url?: string }[]).map((l) => (
          <li>
            {l.description}:{" "}
            {/^https?:\/\//.test(l.url ?? "") ? (
              <a class="mono break" href={l.url} target="_blank" rel="noopener noreferrer">
                {l.url}
              </a>
            ) : (
              <span class="mono break">{l.url}</span>
            )}
          </li>
        ))}
      </ul>
    );
  }
  if (type === "google.rpc.LocalizedMessage") return <p>{String(d.message ?? "")}</p>;
  if (type === "google.rpc.RetryInfo") return <p>Retry after {String(d.retryDelay ?? "")}</p>;
  return null;
}
