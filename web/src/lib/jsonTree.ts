/**
 * A parsed JSON document seen as a tree of nodes, read a page of children at a time (pure:
 * the worker in jsonWorker.ts holds big documents and answers with these; small ones use
 * it in the page). A node is addressed by its steps from the root (keys and indexes).
 */

export type Step = string | number;
export type NodeKind = "object" | "array" | "string" | "number" | "boolean" | "null";

export interface TreeNode {
  /** The key in its parent ("" for the root), or the index of an array element. */
  key: Step;
  steps: Step[];
  kind: NodeKind;
  /** Children of an object or array; 0 for scalars. */
  size: number;
  /** A one-line preview: the scalar as JSON (cut at PREVIEW chars), or "{…}" / "[…]". */
  preview: string;
}

export interface Page {
  nodes: TreeNode[];
  total: number;
}

const PREVIEW = 160;

export function kindOf(v: unknown): NodeKind {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  const t = typeof v;
  return t === "object" ? "object" : t === "string" ? "string" : t === "number" ? "number" : t === "boolean" ? "boolean" : "null";
}

export function node(key: Step, steps: Step[], v: unknown): TreeNode {
  const kind = kindOf(v);
  let size = 0;
  let preview: string;
  if (kind === "object") {
    for (const k in v as object) if (Object.prototype.hasOwnProperty.call(v, k)) size++;
    preview = size ? "{…}" : "{}";
  } else if (kind === "array") {
    size = (v as unknown[]).length;
    preview = size ? "[…]" : "[]";
  } else {
    preview = JSON.stringify(v) ?? "null";
    if (preview.length > PREVIEW) preview = preview.slice(0, PREVIEW) + "…";
  }
  return { key, steps, kind, size, preview };
}

export function lookup(doc: unknown, steps: Step[]): unknown {
  let cur: unknown = doc;
  for (const s of steps) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<string | number, unknown>)[s];
  }
  return cur;
}

/** Up to `count` children of the node at `steps`, from the `from`-th. */
export function children(doc: unknown, steps: Step[], from: number, count: number): Page {
  const v = lookup(doc, steps);
  const nodes: TreeNode[] = [];
  if (Array.isArray(v)) {
    const end = Math.min(v.length, from + count);
    for (let i = from; i < end; i++) nodes.push(node(i, [...steps, i], v[i]));
    return { nodes, total: v.length };
  }
  if (v === null || typeof v !== "object") return { nodes, total: 0 };
  const keys = Object.keys(v);
  const end = Math.min(keys.length, from + count);
  for (let i = from; i < end; i++) nodes.push(node(keys[i], [...steps, keys[i]], (v as Record<string, unknown>)[keys[i]]));
  return { nodes, total: keys.length };
}

/** The node's value as pretty JSON (what "Copy value" copies). */
export function valueText(doc: unknown, steps: Step[]): string {
  const v = lookup(doc, steps);
  return v === undefined ? "" : JSON.stringify(v, null, 2);
}

/** A JSONPath for the steps: `$.forecast.days[3]["odd key"]` (what "Copy path" copies;
 * the message filter reads the same syntax). */
export function pathText(steps: Step[]): string {
  let out = "$";
  for (const s of steps) {
    if (typeof s === "number") out += `[${s}]`;
    else if (/^[A-Za-z_@$][\w@$-]*$/.test(s)) out += `.${s}`;
    else out += `[${JSON.stringify(s)}]`;
  }
  return out;
}
