// The catalog session: the server hands out an id in the X-Session-ID header of
// every response; we keep it in sessionStorage (one session per browser tab,
// surviving reloads) and send it back on every call.

export const SESSION_HEADER = "X-Session-ID";
/** What became of the id a request sent: active, new, expired, closed or unknown. */
export const STATUS_HEADER = "X-Session-Status";

/** Why a session was replaced, as the server reported it. */
export type LostReason = "expired" | "closed" | "unknown";
const KEY = "catalog.session-id";

export type SessionEvent =
  | { kind: "started"; id: string }
  | { kind: "expired"; oldId: string; newId: string; reason: LostReason };

type Listener = (e: SessionEvent) => void;

let memoryId: string | null = null;
const listeners = new Set<Listener>();
const activity = new Set<(at: number) => void>();

function read(): string | null {
  try {
    return sessionStorage.getItem(KEY) ?? memoryId;
  } catch {
    return memoryId;
  }
}

function write(id: string | null): void {
  memoryId = id;
  try {
    if (id) sessionStorage.setItem(KEY, id);
    else sessionStorage.removeItem(KEY);
  } catch {
    // Storage disabled: the in-memory copy still keeps the session for this page.
  }
}

export const session = {
  get id(): string | null {
    return read();
  },
  subscribe(fn: Listener): () => void {
    listeners.add(fn);
    return () => listeners.delete(fn);
  },
  /** Called with the time of every response that carried the session id. */
  onActivity(fn: (at: number) => void): () => void {
    activity.add(fn);
    return () => activity.delete(fn);
  },
  /** Forget the session (after CloseSession): the next call starts a new one. */
  forget(): void {
    write(null);
  },
  /**
   * Records the id a response carried. `sent` is the id the request carried;
   * `status` the server's X-Session-Status (older servers send none: a new id
   * for a sent one then means it expired).
   * A response to a stale id (another call already replaced it) is ignored.
   */
  observe(sent: string | null, received: string | null, status: string | null = null): void {
    if (!received) return;
    const current = read();
    if (sent !== current) return;
    const now = Date.now();
    for (const fn of activity) fn(now);
    if (received === current) return;
    write(received);
    const reason: LostReason =
      status === "closed" || status === "unknown" ? status : "expired";
    const event: SessionEvent =
      sent === null || status === "new"
        ? { kind: "started", id: received }
        : { kind: "expired", oldId: sent, newId: received, reason };
    for (const fn of listeners) fn(event);
  },
};
