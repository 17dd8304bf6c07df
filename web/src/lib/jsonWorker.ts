/// <reference lib="webworker" />
/**
 * The worker behind big response bodies: it parses the JSON off the page's main thread,
 * keeps the parsed documents (the last MAX_DOCS), and answers for one node at a time
 * (children a page at a time, one value as text) and for the whole pretty text.
 */
import { children, node, valueText, type Step } from "./jsonTree";
import type { DocRequest, DocReply } from "./jsonDoc";

const MAX_DOCS = 4;
const docs = new Map<number, unknown>();

function answer(req: DocRequest): unknown {
  switch (req.op) {
    case "open": {
      const doc: unknown = JSON.parse(req.text);
      docs.set(req.doc, doc);
      while (docs.size > MAX_DOCS) docs.delete(docs.keys().next().value as number);
      return node("", [], doc);
    }
    case "children":
      return children(get(req.doc), req.steps, req.from, req.count);
    case "value":
      return valueText(get(req.doc), req.steps as Step[]);
    case "pretty":
      return JSON.stringify(get(req.doc), null, 2);
    case "close":
      docs.delete(req.doc);
      return null;
  }
}

function get(id: number): unknown {
  if (!docs.has(id)) throw new Error("the document was closed");
  return docs.get(id);
}

const scope = self as unknown as DedicatedWorkerGlobalScope;
scope.onmessage = (e: MessageEvent<DocRequest>) => {
  let reply: DocReply;
  try {
    reply = { seq: e.data.seq, ok: true, result: answer(e.data) };
  } catch (err) {
    reply = { seq: e.data.seq, ok: false, error: err instanceof Error ? err.message : String(err) };
  }
  scope.postMessage(reply);
};
