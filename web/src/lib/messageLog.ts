/**
 * The messages of one streamed call, outside Preact state: pushing a message costs an
 * array append, and listeners hear about new messages at most once per animation frame
 * (a 10,000-message burst is a few dozen renders, not 10,000 of them).
 *
 * Modes bound memory for huge streams: "all" keeps every message (up to MAX_KEPT, then
 * the oldest go), "last" keeps the last `keepLast`, "count" keeps only the count and the
 * latest message. `stats` counts messages and flushes for the tests and the benchmark.
 */

export type LogMode = "all" | "last" | "count";

export interface LogEntry {
  json: string;
  elapsedMs: number;
  /** 0-based position in the response stream (as the server numbered it). */
  index: number;
}

/** The most messages kept in "all" mode; past it the oldest are dropped (and said so). */
export const MAX_KEPT = 200_000;

/** The mode the next stream starts in: the last one the user picked (this page). */
export const logPrefs: { mode: LogMode; keepLast: number } = { mode: "all", keepLast: 1000 };

export interface RenderStats {
  messages: number;
  flushes: number;
  rows: number;
}

declare global {
  interface Window {
    __catalogStats?: RenderStats;
  }
}

export const stats: RenderStats = { messages: 0, flushes: 0, rows: 0 };
if (typeof window !== "undefined") window.__catalogStats = stats;

type Listener = () => void;

const frame: (cb: () => void) => void =
  typeof requestAnimationFrame === "function"
    ? (cb) => {
        // A hidden tab gets no animation frames: fall back to a timer so nothing stalls.
        let done = false;
        const run = () => {
          if (!done) {
            done = true;
            cb();
          }
        };
        requestAnimationFrame(run);
        setTimeout(run, 100);
      }
    : (cb) => setTimeout(cb, 16);

export class MessageLog {
  mode: LogMode;
  keepLast: number;
  /** Messages received so far (whatever the mode keeps). */
  total = 0;
  /** Messages dropped from the front (keep-last, or past MAX_KEPT). */
  dropped = 0;
  /** Bumped once per flush: what memoised views compare. */
  version = 0;
  private json: string[] = [];
  private elapsed: number[] = [];
  private indexes: number[] = [];
  private latest: LogEntry | null = null;
  private listeners = new Set<Listener>();
  private scheduled = false;

  constructor(mode: LogMode = logPrefs.mode, keepLast = logPrefs.keepLast) {
    this.mode = mode;
    this.keepLast = Math.max(1, keepLast);
  }

  /** Messages held (what the list shows and the export writes). */
  get length(): number {
    return this.json.length;
  }

  get last(): LogEntry | null {
    return this.latest;
  }

  at(i: number): LogEntry {
    return { json: this.json[i], elapsedMs: this.elapsed[i], index: this.indexes[i] };
  }

  push(json: string, elapsedMs: number, index: number): void {
    this.total++;
    stats.messages++;
    this.latest = { json, elapsedMs, index };
    if (this.mode !== "count") {
      this.json.push(json);
      this.elapsed.push(elapsedMs);
      this.indexes.push(index);
      const cap = this.mode === "last" ? this.keepLast : MAX_KEPT;
      // Trim in batches (amortised O(1) per message), never more than 2× the cap held.
      if (this.json.length >= cap * 2 || (this.mode === "last" && this.json.length > cap + 1024)) {
        this.trim(cap);
      }
    }
    this.schedule();
  }

  /** Switch modes; messages already dropped stay dropped. */
  setMode(mode: LogMode, keepLast = this.keepLast): void {
    logPrefs.mode = mode;
    logPrefs.keepLast = Math.max(1, keepLast);
    this.mode = mode;
    this.keepLast = Math.max(1, keepLast);
    if (mode === "count") this.trim(0);
    else if (mode === "last") this.trim(this.keepLast);
    this.schedule();
  }

  private trim(cap: number): void {
    const extra = this.json.length - cap;
    if (extra <= 0) return;
    this.json.splice(0, extra);
    this.elapsed.splice(0, extra);
    this.indexes.splice(0, extra);
    this.dropped += extra;
  }

  /** Listen for changes, at most once per animation frame. */
  subscribe(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Notify at once (the end of a stream: no frame to wait for). */
  flush(): void {
    this.scheduled = false;
    this.version++;
    stats.flushes++;
    for (const fn of this.listeners) fn();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    frame(() => {
      if (this.scheduled) this.flush();
    });
  }

  /** Every held message as NDJSON (one compact JSON document a line). */
  ndjson(): string {
    if (!this.json.length) return "";
    return this.json.join("\n") + "\n";
  }
}

const channel = typeof MessageChannel === "function" ? new MessageChannel() : null;
const waiting: (() => void)[] = [];
if (channel) channel.port1.onmessage = () => waiting.shift()?.();

/** A macrotask boundary (faster than setTimeout's clamp): lets frames and input run. */
export function yieldToBrowser(): Promise<void> {
  if (!channel) return new Promise((r) => setTimeout(r, 0));
  return new Promise((r) => {
    waiting.push(r);
    channel.port2.postMessage(0);
  });
}

/** Time slices for a loop over many events: `due()` says when to yield (every ~8 ms). */
export class Slicer {
  private start = performance.now();
  constructor(private readonly budgetMs = 8) {}
  async pause(): Promise<void> {
    if (performance.now() - this.start < this.budgetMs) return;
    await yieldToBrowser();
    this.start = performance.now();
  }
}

/** A matcher for the filter box: text (case-insensitive substring) or a JSONPath. */
export function messageFilter(query: string): ((json: string) => boolean) | null {
  const q = query.trim();
  if (!q) return null;
  if (q.startsWith("$")) {
    const m = /^(\$[^=!<>\s]*)\s*(?:(==|!=|>=|<=|>|<)\s*(.*))?$/.exec(q);
    const path = m ? parsePath(m[1]) : null;
    if (!path) return () => false;
    const op = m?.[2];
    const want = op ? parseValue(m?.[3] ?? "") : undefined;
    return (json) => {
      let doc: unknown;
      try {
        doc = JSON.parse(json);
      } catch {
        return false;
      }
      const values = select(doc, path);
      if (!op) return values.length > 0;
      return values.some((v) => compare(v, op, want));
    };
  }
  const needle = q.toLowerCase();
  return (json) => json.toLowerCase().includes(needle);
}

type Step = string | number | "*";

function parsePath(text: string): Step[] | null {
  const steps: Step[] = [];
  const re = /\.([A-Za-z_@$][\w@$-]*|\*)|\[(\d+|\*)\]|\["([^"]*)"\]/y;
  let i = 1;
  re.lastIndex = 1;
  while (i < text.length) {
    re.lastIndex = i;
    const m = re.exec(text);
    if (!m) return null;
    if (m[1] !== undefined) steps.push(m[1] === "*" ? "*" : m[1]);
    else if (m[2] !== undefined) steps.push(m[2] === "*" ? "*" : Number(m[2]));
    else steps.push(m[3]);
    i = re.lastIndex;
  }
  return steps;
}

function select(doc: unknown, path: Step[]): unknown[] {
  let cur: unknown[] = [doc];
  for (const step of path) {
    const next: unknown[] = [];
    for (const v of cur) {
      if (v === null || typeof v !== "object") continue;
      if (step === "*") next.push(...Object.values(v as Record<string, unknown>));
      else if (Array.isArray(v) && typeof step === "number") {
        if (step < v.length) next.push(v[step]);
      } else if (!Array.isArray(v) && typeof step === "string" && step in (v as object)) {
        next.push((v as Record<string, unknown>)[step]);
      }
    }
    cur = next;
  }
  return cur;
}

function parseValue(text: string): unknown {
  const t = text.trim();
  try {
    return JSON.parse(t);
  } catch {
    return t.replace(/^'(.*)'$/, "$1");
  }
}

function compare(v: unknown, op: string, want: unknown): boolean {
  // proto3 JSON writes 64-bit integers as strings: compare numbers by value.
  const a = typeof v === "string" && typeof want === "number" && v.trim() !== "" ? Number(v) : v;
  switch (op) {
    case "==":
      return a === want || (typeof a === "object" && JSON.stringify(a) === JSON.stringify(want));
    case "!=":
      return !(a === want || (typeof a === "object" && JSON.stringify(a) === JSON.stringify(want)));
    default: {
      if (typeof a !== "number" || typeof want !== "number") return false;
      return op === ">" ? a > want : op === "<" ? a < want : op === ">=" ? a >= want : a <= want;
    }
  }
}

/** One-line JSON with ", " and ": " (what a row shows): readable, and cheap to render. */
export function oneLine(json: string, max = 400): string {
  let out = "";
  let inString = false;
  for (let i = 0; i < json.length && out.length < max; i++) {
    const c = json[i];
    out += c;
    if (inString) {
      if (c === "\\") {
        i++;
        if (i < json.length) out += json[i];
      } else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "," || c === ":") out += " ";
  }
  return out.length >= max ? out.slice(0, max) + "…" : out;
}
