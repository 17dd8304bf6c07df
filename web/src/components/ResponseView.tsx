import type { ComponentChildren, RefObject } from "preact";
import { useEffect, useMemo, useState } from "preact/hooks";
import { formatMs, prettyJson } from "../lib/format";
import { JsonDoc } from "../lib/jsonDoc";
import type { TreeNode } from "../lib/jsonTree";
import { MessageLog } from "../lib/messageLog";
import { statusHint, statusName } from "../lib/status";
import { JsonTree } from "./JsonTree";
import { MessageList } from "./MessageList";
import { CopyButton, Spinner, Tabs } from "./ui";

export interface HeaderKV {
  key: string;
  value: string;
}

/** Re-render when the log flushes (at most once an animation frame). */
function useLog(log: MessageLog | null): number {
  const [version, setVersion] = useState(0);
  useEffect(() => (log ? log.subscribe(() => setVersion(log.version)) : undefined), [log]);
  return version;
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
  /** The messages of a streamed call (outside state: see lib/messageLog). */
  log: MessageLog | null;
  /** A live call (StartCall): request messages sent so far, and whether it half-closed. */
  live: { sent: number; halfClosed: boolean } | null;
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
    log: streaming ? new MessageLog() : null,
    live: null,
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

export function ResponseView({ result, onCancel, boxRef: ref }: { result: CallResult | null; onCancel: () => void; boxRef?: RefObject<HTMLDivElement | null> }) {
  const [tab, setTab] = useState("body");
  useLog(result?.log ?? null);
  // A new call starts on its body; a failed one with error details opens them.
  useEffect(() => setTab("body"), [result?.startedAt]);
  // When a call ends and focus fell to the page (its button went away or was disabled),
  // move it to the status, which a screen reader then reads.
  const done = !!result?.done;
  useEffect(() => {
    if (!done) return;
    const active = document.activeElement;
    if (!active || active === document.body || (active as HTMLButtonElement).disabled) {
      document.getElementById("call-status")?.focus({ preventScroll: true });
    }
  }, [done, result?.startedAt]);
  const failedWithDetails = !!result && result.done && !result.success && !!result.errorDetailsJson;
  useEffect(() => {
    if (failedWithDetails && !result?.streaming) setTab("details");
  }, [failedWithDetails, result?.startedAt]);
  if (!result) {
    return (
      <div class="response response-empty" data-testid="response" ref={ref}>
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
  const count = result.log?.total ?? 0;
  const tabs = [
    { id: "body", label: result.streaming ? `Messages (${count})` : "Body" },
    { id: "headers", label: `Headers (${result.headers.length})` },
    { id: "trailers", label: `Trailers (${result.trailers.length})` },
    ...(details.length || result.errorDetailsJson ? [{ id: "details", label: `Error details (${details.length || 1})` }] : []),
  ];
  const active = tabs.some((t) => t.id === tab) ? tab : "body";
  const hint = !ok && result.done && !result.catalogError ? statusHint(code) : null;

  let panel: ComponentChildren = null;
  if (active === "headers") panel = <HeaderTable rows={result.headers} empty="No response headers." />;
  else if (active === "trailers") panel = <HeaderTable rows={result.trailers} empty="No trailers." />;
  else if (active === "details") panel = <ErrorDetails details={details} raw={result.errorDetailsJson} />;
  // The body stays mounted (hidden) while another tab shows: a big one is not re-rendered.
  const body = result.log ? <MessageList log={result.log} running={result.running} /> : <Body text={result.body} result={result} />;

  return (
    <div class="response" data-testid="response" ref={ref}>
      <div class="status-bar">
        {result.running ? (
          <span class="status-badge is-running">
            <Spinner label="Calling" /> {result.streaming ? "Streaming…" : "Calling…"}
          </span>
        ) : (
          <span class={`status-badge ${ok ? "is-ok" : "is-error"}`} data-testid="status" id="call-status" tabIndex={-1} role="status">
            {result.catalogError ? name : `${code} ${name}`}
          </span>
        )}
        {result.live && (
          <span class="muted small" data-testid="live-sent">
            {result.live.sent} sent{result.live.halfClosed ? " · half-closed" : ""}
          </span>
        )}
        {result.done && <span class="muted small" data-testid="duration">{formatMs(result.durationMs)}</span>}
        {result.streaming && <span class="muted small">{count.toLocaleString()} received</span>}
        <span class="status-spacer" />
        {result.running && result.streaming && (
          <button type="button" class="btn btn-secondary btn-sm" onClick={onCancel}>
            Cancel
          </button>
        )}
        {!result.streaming && result.body && <CopyButton text={() => prettyJson(result.body)} label="Copy JSON" />}
        {result.log && result.log.length > 0 && result.log.length <= 10_000 && (
          <CopyButton text={() => `[\n${Array.from({ length: result.log?.length ?? 0 }, (_, i) => prettyJson(result.log?.at(i).json ?? "")).join(",\n")}\n]`} label="Copy all" />
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
        <div hidden={active !== "body"}>{body}</div>
        {panel}
      </div>
    </div>
  );
}

function Body({ text, result }: { text: string; result: CallResult }) {
  if (result.running) return <p class="muted">Waiting for the response…</p>;
  if (!text) return <p class="muted">{result.success ? "Empty response message ({})." : "No response message."}</p>;
  return <BodyViews text={text} />;
}

type BodyView = "tree" | "raw";

/**
 * A response body as a collapsed tree or as raw (pretty) JSON. A big body (over
 * HIGHLIGHT_LIMIT characters) opens as the tree and is parsed and pretty-printed in a
 * worker (lib/jsonDoc), so the page never blocks on it; a small one opens raw. A view once
 * shown stays mounted (hidden) while the other shows: switching back costs nothing.
 */
let bodyViews = 0;

export function BodyViews({ text, rawTestid = "response-json", label = "Response body" }: { text: string; rawTestid?: string; label?: string }) {
  const [group] = useState(() => `body-view-${++bodyViews}`);
  const big = text.length > HIGHLIGHT_LIMIT;
  const [view, setView] = useState<BodyView>(big ? "tree" : "raw");
  const [seen, setSeen] = useState<Set<BodyView>>(() => new Set([view]));
  const [opened, setOpened] = useState<{ doc: JsonDoc; root: TreeNode } | null>(null);
  const [invalid, setInvalid] = useState(false);
  const [bigPretty, setBigPretty] = useState<string | null>(null);
  const smallPretty = useMemo(() => (big ? "" : prettyJson(text)), [text, big]);
  useEffect(() => {
    const first: BodyView = big ? "tree" : "raw";
    setView(first);
    setSeen(new Set([first]));
    setOpened(null);
    setInvalid(false);
    setBigPretty(null);
  }, [text]);
  const wantDoc = big || seen.has("tree");
  useEffect(() => {
    if (!wantDoc) return undefined;
    let live = true;
    let doc: JsonDoc | null = null;
    JsonDoc.open(text).then(
      (o) => {
        doc = o.doc;
        if (live) setOpened(o);
        else o.doc.close();
      },
      () => live && setInvalid(true),
    );
    return () => {
      live = false;
      doc?.close();
    };
  }, [text, wantDoc]);
  useEffect(() => {
    if (big && seen.has("raw") && opened && bigPretty === null) void opened.doc.pretty().then(setBigPretty);
  }, [big, seen, opened, bigPretty]);
  if (invalid) return <JsonView text={text} testid={rawTestid} />;
  const pick = (v: BodyView) => {
    setView(v);
    setSeen((s) => (s.has(v) ? s : new Set([...s, v])));
  };
  const waiting = <p class="muted">{big ? `Reading ${(text.length / 1_048_576).toFixed(1)} MB…` : "Reading…"}</p>;
  return (
    <div class="body-views">
      <div class="segmented segmented-sm body-view-switch" role="radiogroup" aria-label="Body view">
        {(["tree", "raw"] as const).map((v) => (
          <label class={`segment ${view === v ? "is-active" : ""}`}>
            <input type="radio" name={group} class="visually-hidden" checked={view === v} onChange={() => pick(v)} data-testid={`body-view-${v}`} />
            <span>{v === "tree" ? "Tree" : "Raw"}</span>
          </label>
        ))}
      </div>
      {seen.has("tree") && <div hidden={view !== "tree"}>{opened ? <JsonTree doc={opened.doc} root={opened.root} label={label} /> : waiting}</div>}
      {seen.has("raw") && (
        <div hidden={view !== "raw"}>
          {big ? bigPretty === null ? waiting : <JsonView text={bigPretty} testid={rawTestid} /> : <JsonView text={smallPretty} testid={rawTestid} />}
        </div>
      )}
    </div>
  );
}

/** Pretty JSON with light syntax colouring (no HTML injection: text nodes only). */
const HIGHLIGHT_LIMIT = 200_000;
/** Big bodies are shown as plain text in chunks of about this many characters, a few
 * chunks per animation frame; off-screen chunks skip layout (content-visibility). */
const CHUNK = 32_000;

export function JsonTokens({ text }: { text: string }) {
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
  return <>{tokens}</>;
}

function chunksOf(text: string): string[] {
  const out: string[] = [];
  let at = 0;
  while (at < text.length) {
    let end = Math.min(text.length, at + CHUNK);
    if (end < text.length) {
      const nl = text.indexOf("\n", end);
      end = nl < 0 ? text.length : nl + 1;
    }
    out.push(text.slice(at, end));
    at = end;
  }
  return out;
}

function BigText({ text, testid }: { text: string; testid: string }) {
  const chunks = useMemo(() => chunksOf(text), [text]);
  const [shown, setShown] = useState(Math.min(chunks.length, 4));
  useEffect(() => setShown(Math.min(chunks.length, 4)), [chunks]);
  useEffect(() => {
    if (shown >= chunks.length) return undefined;
    const id = requestAnimationFrame(() => setShown((n) => Math.min(chunks.length, n + 8)));
    return () => cancelAnimationFrame(id);
  }, [shown, chunks]);
  return (
    <pre class="json-view json-big" data-testid={testid} data-chunks={chunks.length} data-shown={shown}>
      <code>
        {chunks.slice(0, shown).map((c, i) => (
          <div class="json-chunk" key={i}>
            {c}
          </div>
        ))}
      </code>
      {shown < chunks.length && <p class="muted small">Rendering… {Math.round((shown / chunks.length) * 100)}%</p>}
    </pre>
  );
}

export function JsonView({ text, testid = "response-json" }: { text: string; testid?: string }) {
  if (text.length > HIGHLIGHT_LIMIT) return <BigText text={text} testid={testid} />;
  return (
    <pre class="json-view" data-testid={testid}>
      <code>
        <JsonTokens text={text} />
      </code>
    </pre>
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
