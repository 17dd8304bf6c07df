import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { formatMs, prettyJson } from "../lib/format";
import { MAX_KEPT, messageFilter, oneLine, stats, type LogMode, type MessageLog } from "../lib/messageLog";
import { BodyViews, JsonTokens, JsonView } from "./ResponseView";
import { CopyButton } from "./ui";

/** Height of one row (px); rows are fixed-height so the list can be windowed. */
export const ROW_HEIGHT = 60;
const OVERSCAN = 6;
const DEFAULT_VIEWPORT = 480;

/** Re-render when the log flushes (at most once a frame), unless the display is paused. */
function useLogVersion(log: MessageLog, paused: boolean): number {
  const [version, setVersion] = useState(log.version);
  useEffect(() => {
    setVersion(log.version);
    if (paused) return undefined;
    return log.subscribe(() => setVersion(log.version));
  }, [log, paused]);
  return version;
}

interface Matches {
  query: string;
  abs: number[];
  scanned: number;
}

/**
 * Every message of a stream in a windowed list: only the rows in view (plus a few) are in
 * the DOM, whatever the count. Count, filter (text or JSONPath), jump to #n, pause the
 * display, keep-last-N / count-only modes, and an NDJSON export of every held message.
 */
export function MessageList({ log, running }: { log: MessageLog; running: boolean }) {
  const [paused, setPausedState] = useState(false);
  const [frozen, setFrozen] = useState(0);
  const version = useLogVersion(log, paused);
  const setPaused = (p: boolean) => {
    setFrozen(log.length);
    setPausedState(p);
  };
  // While paused the list shows what it held then; messages keep arriving in the log.
  const held = paused ? Math.min(frozen, log.length) : log.length;
  const [query, setQuery] = useState("");
  const [jump, setJump] = useState("");
  const [selected, setSelected] = useState<number | null>(null);
  const [mode, setModeState] = useState<LogMode>(log.mode);
  const [keepLast, setKeepLast] = useState(log.keepLast);
  const [scrollTop, setScrollTop] = useState(0);
  const [viewport, setViewport] = useState(DEFAULT_VIEWPORT);
  const scroller = useRef<HTMLDivElement>(null);
  const follow = useRef(true);
  const matches = useRef<Matches>({ query: "", abs: [], scanned: 0 });

  // Rows to show: every held message, or the filter's matches (scanned incrementally).
  const rows = useMemo(() => {
    const test = messageFilter(query);
    if (!test) return null;
    const m = matches.current;
    if (m.query !== query) {
      matches.current = { query, abs: [], scanned: log.dropped };
    }
    const cur = matches.current;
    const end = log.dropped + held;
    for (let a = Math.max(cur.scanned, log.dropped); a < end; a++) {
      if (test(log.at(a - log.dropped).json)) cur.abs.push(a);
    }
    cur.scanned = end;
    let drop = 0;
    while (drop < cur.abs.length && cur.abs[drop] < log.dropped) drop++;
    if (drop) cur.abs.splice(0, drop);
    return cur.abs.map((a) => a - log.dropped);
  }, [log, query, version, held]);

  const count = rows ? rows.length : held;

  // The viewport is measured when the list appears and when it is resized, never per
  // flush: reading layout while messages pour in forced a layout of the page each frame.
  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return undefined;
    const measure = () => setViewport(el.clientHeight || DEFAULT_VIEWPORT);
    measure();
    if (typeof ResizeObserver !== "function") return undefined;
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    return () => ro.disconnect();
  }, [mode]);

  // Follow the tail: the content height is known (fixed-height rows), so nothing is read.
  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el || !follow.current || !running) return;
    const top = Math.max(0, count * ROW_HEIGHT - viewport);
    el.scrollTop = top;
    setScrollTop(top);
  }, [version, count, running, viewport]);

  const onScroll = () => {
    const el = scroller.current;
    if (!el) return;
    setScrollTop(el.scrollTop);
    follow.current = el.scrollTop + viewport >= count * ROW_HEIGHT - ROW_HEIGHT;
  };

  const first = Math.max(0, Math.floor(scrollTop / ROW_HEIGHT) - OVERSCAN);
  const last = Math.min(count, Math.ceil((scrollTop + viewport) / ROW_HEIGHT) + OVERSCAN);
  stats.rows = last - first;

  const goTo = (n: number) => {
    // n is the 1-based message number the server sent.
    let pos = -1;
    const at = n - 1;
    const list = rows ?? null;
    const total = list ? list.length : held;
    let lo = 0;
    let hi = total - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const idx = log.at(list ? list[mid] : mid).index;
      if (idx === at) {
        pos = mid;
        break;
      }
      if (idx < at) lo = mid + 1;
      else hi = mid - 1;
    }
    if (pos < 0) return false;
    follow.current = false;
    const el = scroller.current;
    if (el) {
      el.scrollTop = Math.max(0, pos * ROW_HEIGHT - el.clientHeight / 2 + ROW_HEIGHT / 2);
      setScrollTop(el.scrollTop);
    }
    setSelected(list ? list[pos] : pos);
    return true;
  };

  const setMode = (m: LogMode, n = keepLast) => {
    setModeState(m);
    setKeepLast(n);
    log.setMode(m, n);
    setSelected(null);
  };

  const exportAll = () => {
    const blob = new Blob([log.ndjson()], { type: "application/x-ndjson" });
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = "messages.ndjson";
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  };

  const shown: preact.JSX.Element[] = [];
  for (let i = first; i < last; i++) {
    const pos = rows ? rows[i] : i;
    const m = log.at(pos);
    shown.push(
      <li
        key={m.index}
        class={`msg-row ${selected === pos ? "is-selected" : ""}`}
        style={{ top: `${i * ROW_HEIGHT}px`, height: `${ROW_HEIGHT}px` }}
        aria-setsize={count}
        aria-posinset={i + 1}
      >
        <button
          type="button"
          class="msg-open"
          aria-pressed={selected === pos}
          onClick={() => setSelected(selected === pos ? null : pos)}
        >
          <span class="msg-meta">
            <span class="mono">#{m.index + 1}</span>
            <span class="muted small">+{formatMs(m.elapsedMs)}</span>
          </span>
          <code class="msg-preview" data-testid="stream-message">
            <JsonTokens text={oneLine(m.json)} />
          </code>
        </button>
      </li>,
    );
  }

  const detail = selected !== null && selected < held ? log.at(selected) : null;
  const countOnly = mode === "count";

  return (
    <div class="message-list">
      <div class="msg-toolbar" role="toolbar" aria-label="Messages">
        <span class="msg-count" data-testid="stream-count" aria-live="off">
          {rows ? `${count.toLocaleString()} of ${log.total.toLocaleString()}` : log.total.toLocaleString()} message{log.total === 1 ? "" : "s"}
          {log.dropped > 0 && !countOnly && <span class="muted small"> (first {log.dropped.toLocaleString()} not kept)</span>}
        </span>
        <label class="field field-inline msg-filter">
          <span class="sr-only">Filter messages by text or JSONPath</span>
          <input
            type="search"
            class="input-md"
            placeholder="Filter: text or $.path == value"
            spellcheck={false}
            value={query}
            disabled={countOnly}
            data-testid="stream-filter"
            onInput={(e) => {
              setQuery(e.currentTarget.value);
              setSelected(null);
            }}
          />
        </label>
        <form
          class="inline-group"
          onSubmit={(e) => {
            e.preventDefault();
            const n = Number(jump);
            if (Number.isInteger(n) && n > 0 && !goTo(n)) {
              setJump("");
            }
          }}
        >
          <label class="field field-inline">
            <span class="sr-only">Jump to message number</span>
            <input type="number" min={1} class="input-short" placeholder="#" value={jump} disabled={countOnly} data-testid="stream-jump" onInput={(e) => setJump(e.currentTarget.value)} />
          </label>
          <button type="submit" class="btn btn-ghost btn-sm" disabled={countOnly}>
            Go
          </button>
        </form>
        <button type="button" class="btn btn-ghost btn-sm" aria-pressed={paused} data-testid="stream-pause" onClick={() => setPaused(!paused)}>
          {paused ? "Resume display" : "Pause display"}
        </button>
        <label class="field field-inline">
          <span class="sr-only">Keep</span>
          <select class="select-sm" value={mode} data-testid="stream-mode" onChange={(e) => setMode(e.currentTarget.value as LogMode)}>
            <option value="all">Keep all (up to {MAX_KEPT.toLocaleString()})</option>
            <option value="last">Keep the last…</option>
            <option value="count">Count only</option>
          </select>
        </label>
        {mode === "last" && (
          <label class="field field-inline">
            <span class="sr-only">How many messages to keep</span>
            <input
              type="number"
              class="input-short"
              min={1}
              value={keepLast}
              onChange={(e) => setMode("last", Math.max(1, Number(e.currentTarget.value) || 1))}
            />
          </label>
        )}
        <span class="status-spacer" />
        <button type="button" class="btn btn-ghost btn-sm" disabled={!held} data-testid="stream-export" onClick={exportAll}>
          Export NDJSON
        </button>
      </div>
      {paused && <p class="muted small msg-paused">Display paused; messages keep arriving ({log.total.toLocaleString()} so far).</p>}
      {countOnly ? (
        <div class="msg-count-only">
          <p>
            <strong data-testid="stream-count-only">{log.total.toLocaleString()}</strong> messages received; only the count and the latest are kept.
          </p>
          {log.last && <JsonView text={prettyJson(log.last.json)} testid="stream-latest" />}
        </div>
      ) : count === 0 ? (
        <p class="muted">{held ? "No message matches the filter." : running ? "Waiting for the first message…" : "The stream ended without messages."}</p>
      ) : (
        <div class="msg-scroller" ref={scroller} onScroll={onScroll} tabIndex={0} aria-label={`${count} messages`} data-testid="stream-messages">
          <ol class="msg-rows" style={{ height: `${count * ROW_HEIGHT}px` }}>
            {shown}
          </ol>
        </div>
      )}
      {detail && !countOnly && (
        <div class="msg-detail">
          <div class="row">
            <h4 class="mono">Message #{detail.index + 1}</h4>
            <span class="muted small">+{formatMs(detail.elapsedMs)}</span>
            <span class="status-spacer" />
            <CopyButton text={prettyJson(detail.json)} label="Copy" />
          </div>
          <BodyViews key={detail.index} text={detail.json} rawTestid="stream-message-detail" label={`Message #${detail.index + 1}`} />
        </div>
      )}
    </div>
  );
}
