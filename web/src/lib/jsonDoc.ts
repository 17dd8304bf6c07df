/**
 * A JSON document held by a Web Worker (jsonWorker.ts), so that parsing and
 * pretty-printing a big body never blocks the page: the page asks for the root, for a
 * page of a node's children, for one value as text, or for the whole pretty text. Where
 * no worker can start, the same functions run in the page.
 */
import { children, node, valueText, type Page, type Step, type TreeNode } from "./jsonTree";
import JsonWorker from "./jsonWorker?worker&inline";

export type DocRequest =
  | { seq: number; doc: number; op: "open"; text: string }
  | { seq: number; doc: number; op: "children"; steps: Step[]; from: number; count: number }
  | { seq: number; doc: number; op: "value"; steps: Step[] }
  | { seq: number; doc: number; op: "pretty" }
  | { seq: number; doc: number; op: "close" };

export type DocReply = { seq: number; ok: true; result: unknown } | { seq: number; ok: false; error: string };

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void };

let worker: Worker | null | undefined;
const pending = new Map<number, Pending>();
let seq = 0;
let docs = 0;

/** Count of worker round trips (the tests read it: big bodies are parsed off the page). */
export const docStats = { workerRequests: 0, inPage: 0 };
declare global {
  interface Window {
    __docStats?: typeof docStats;
  }
}
if (typeof window !== "undefined") window.__docStats = docStats;

function theWorker(): Worker | null {
  if (worker !== undefined) return worker;
  try {
    worker = new JsonWorker();
    worker.onmessage = (e: MessageEvent<DocReply>) => {
      const p = pending.get(e.data.seq);
      if (!p) return;
      pending.delete(e.data.seq);
      if (e.data.ok) p.resolve(e.data.result);
      else p.reject(new Error(e.data.error));
    };
    worker.onerror = () => {
      for (const p of pending.values()) p.reject(new Error("the JSON worker failed"));
      pending.clear();
    };
  } catch {
    worker = null;
  }
  return worker;
}

type Body<R extends DocRequest> = R extends unknown ? Omit<R, "seq" | "doc"> : never;

export class JsonDoc {
  readonly id = ++docs;
  private local: unknown = undefined;
  private closed = false;

  private constructor(private readonly remote: Worker | null) {}

  /** Parse `text` (in the worker when one runs); the root node. Throws for invalid JSON. */
  static async open(text: string): Promise<{ doc: JsonDoc; root: TreeNode }> {
    const doc = new JsonDoc(theWorker());
    if (!doc.remote) {
      docStats.inPage++;
      doc.local = JSON.parse(text);
      return { doc, root: node("", [], doc.local) };
    }
    performance.mark("catalog:doc-open");
    const root = (await doc.ask({ op: "open", text })) as TreeNode;
    performance.mark("catalog:doc-ready");
    return { doc, root };
  }

  private ask(req: Body<DocRequest>): Promise<unknown> {
    const w = this.remote as Worker;
    const s = ++seq;
    docStats.workerRequests++;
    return new Promise((resolve, reject) => {
      pending.set(s, { resolve, reject });
      w.postMessage({ ...req, seq: s, doc: this.id });
    });
  }

  async children(steps: Step[], from: number, count: number): Promise<Page> {
    if (!this.remote) return children(this.local, steps, from, count);
    return (await this.ask({ op: "children", steps, from, count })) as Page;
  }

  async value(steps: Step[]): Promise<string> {
    if (!this.remote) return valueText(this.local, steps);
    return (await this.ask({ op: "value", steps })) as string;
  }

  async pretty(): Promise<string> {
    if (!this.remote) return JSON.stringify(this.local, null, 2);
    return (await this.ask({ op: "pretty" })) as string;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.local = undefined;
    if (this.remote) void this.ask({ op: "close" }).catch(() => undefined);
  }
}
