import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { copyText } from "../lib/format";
import type { JsonDoc } from "../lib/jsonDoc";
import { pathText, type Step, type TreeNode } from "../lib/jsonTree";
import { toast } from "../state/store";
import { IconCopy } from "./icons";

/** Height of one row (px): rows are fixed-height so the tree can be windowed. */
const ROW = 24;
/** Children fetched per expansion (and per "show more"). */
const PAGE = 200;
const OVERSCAN = 12;
const DEFAULT_VIEWPORT = 480;

interface Loaded {
  nodes: TreeNode[];
  total: number;
}

type Row =
  | { kind: "node"; node: TreeNode; level: number }
  | { kind: "more"; steps: Step[]; level: number; left: number };

const keyOf = (steps: Step[]) => JSON.stringify(steps);

/** Stats the tests read: rows in the DOM and children pages fetched. */
export const treeStats = { rows: 0, pages: 0 };
declare global {
  interface Window {
    __treeStats?: typeof treeStats;
  }
}
if (typeof window !== "undefined") window.__treeStats = treeStats;

function label(n: TreeNode): string {
  if (n.kind === "object") return n.size ? `{${n.size} ${n.size === 1 ? "key" : "keys"}}` : "{}";
  if (n.kind === "array") return n.size ? `[${n.size} ${n.size === 1 ? "item" : "items"}]` : "[]";
  return n.preview;
}

/**
 * A big JSON body as a collapsed tree (what Postman and Kreya show): the root's children
 * first, a node's children fetched from the worker when it is expanded (PAGE at a time),
 * and only the rows in view in the DOM. Arrow keys walk and open it (the WAI-ARIA tree
 * pattern); the toolbar copies the selected node's path (JSONPath) or value.
 */
export function JsonTree({ doc, root, label: treeLabel = "Response body" }: { doc: JsonDoc; root: TreeNode; label?: string }) {
  const [loaded, setLoaded] = useState<Map<string, Loaded>>(() => new Map());
  const [open, setOpen] = useState<Set<string>>(() => new Set());
  const [selected, setSelected] = useState(0);
  const [scrollTop, setScrollTop] = useState(0);
  const [viewport, setViewport] = useState(DEFAULT_VIEWPORT);
  const scroller = useRef<HTMLDivElement>(null);
  const focusSelected = useRef(false);
  const pendingFocus = useRef(false);

  const load = async (steps: Step[], from: number) => {
    treeStats.pages++;
    performance.mark("catalog:tree-load");
    const page = await doc.children(steps, from, PAGE);
    performance.mark("catalog:tree-page");
    setLoaded((prev) => {
      const next = new Map(prev);
      const had = next.get(keyOf(steps));
      next.set(keyOf(steps), { nodes: from && had ? [...had.nodes, ...page.nodes] : page.nodes, total: page.total });
      return next;
    });
  };
  useEffect(() => {
    setLoaded(new Map());
    setOpen(new Set());
    setSelected(0);
    if (root.size) void load([], 0).catch((e: Error) => toast(`Could not read the body: ${e.message}`, "error"));
  }, [doc]);

  const rows = useMemo(() => {
    const out: Row[] = [];
    const walk = (steps: Step[], level: number) => {
      const l = loaded.get(keyOf(steps));
      if (!l) return;
      for (const n of l.nodes) {
        out.push({ kind: "node", node: n, level });
        if (n.size && open.has(keyOf(n.steps))) walk(n.steps, level + 1);
      }
      if (l.nodes.length < l.total) out.push({ kind: "more", steps, level, left: l.total - l.nodes.length });
    };
    walk([], 1);
    return out;
  }, [loaded, open]);

  useLayoutEffect(() => {
    const el = scroller.current;
    if (el) setViewport(el.clientHeight || DEFAULT_VIEWPORT);
  }, [rows.length]);

  // Keep the selected row in view, and focused when the keyboard moved it.
  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el || !focusSelected.current) return;
    focusSelected.current = false;
    const top = selected * ROW;
    if (top < el.scrollTop) el.scrollTop = top;
    else if (top + ROW > el.scrollTop + el.clientHeight) el.scrollTop = top + ROW - el.clientHeight;
    setScrollTop(el.scrollTop);
    pendingFocus.current = true;
  }, [selected, rows]);
  // Focus the selected row as soon as it is rendered (this render, or the one after the
  // scroll above), so that the next key press finds it.
  useLayoutEffect(() => {
    if (!pendingFocus.current) return;
    const row = scroller.current?.querySelector<HTMLElement>(`[data-pos="${selected}"]`);
    if (!row) return;
    pendingFocus.current = false;
    row.focus({ preventScroll: true });
  });

  const toggle = (n: TreeNode, want?: boolean) => {
    if (!n.size) return;
    const k = keyOf(n.steps);
    const isOpen = open.has(k);
    if (want === isOpen) return;
    const next = new Set(open);
    if (isOpen) next.delete(k);
    else {
      next.add(k);
      if (!loaded.has(k)) void load(n.steps, 0);
    }
    setOpen(next);
  };

  const move = (to: number) => {
    focusSelected.current = true;
    setSelected(Math.max(0, Math.min(rows.length - 1, to)));
  };

  const onKey = (e: KeyboardEvent) => {
    const row = rows[selected];
    if (!row) return;
    const keys: Record<string, () => void> = {
      ArrowDown: () => move(selected + 1),
      ArrowUp: () => move(selected - 1),
      Home: () => move(0),
      End: () => move(rows.length - 1),
      PageDown: () => move(selected + Math.floor(viewport / ROW)),
      PageUp: () => move(selected - Math.floor(viewport / ROW)),
      ArrowRight: () => {
        if (row.kind !== "node" || !row.node.size) return;
        if (open.has(keyOf(row.node.steps))) move(selected + 1);
        else toggle(row.node, true);
      },
      ArrowLeft: () => {
        if (row.kind === "node" && row.node.size && open.has(keyOf(row.node.steps))) return toggle(row.node, false);
        const parent = keyOf(row.kind === "node" ? row.node.steps.slice(0, -1) : row.steps);
        const at = rows.findIndex((r) => r.kind === "node" && keyOf(r.node.steps) === parent);
        if (at >= 0) move(at);
      },
      Enter: () => {
        if (row.kind === "node") return toggle(row.node);
        // The "show more" row becomes the first new child: keep the focus on that place.
        focusSelected.current = true;
        void load(row.steps, loadedCount(row.steps));
      },
    };
    const fn = keys[e.key] ?? (e.key === " " ? keys.Enter : undefined);
    if (!fn) return;
    e.preventDefault();
    fn();
  };

  const loadedCount = (steps: Step[]) => loaded.get(keyOf(steps))?.nodes.length ?? 0;

  const first = Math.max(0, Math.floor(scrollTop / ROW) - OVERSCAN);
  const last = Math.min(rows.length, Math.ceil((scrollTop + viewport) / ROW) + OVERSCAN);
  treeStats.rows = last - first;
  const current = rows[selected];
  const currentSteps = current?.kind === "node" ? current.node.steps : null;

  const shown = [];
  for (let i = first; i < last; i++) {
    const r = rows[i];
    const style = { top: `${i * ROW}px`, height: `${ROW}px`, paddingLeft: `${(r.level - 1) * 16 + 4}px` };
    if (r.kind === "more") {
      shown.push(
        <div
          key={`${keyOf(r.steps)}+`}
          role="treeitem"
          aria-level={r.level}
          aria-selected={i === selected}
          tabIndex={i === selected ? 0 : -1}
          data-pos={i}
          class={`jt-row jt-more ${i === selected ? "is-selected" : ""}`}
          style={style}
          onClick={() => {
            setSelected(i);
            void load(r.steps, loadedCount(r.steps));
          }}
        >
          Show {Math.min(PAGE, r.left).toLocaleString()} more of {r.left.toLocaleString()}…
        </div>,
      );
      continue;
    }
    const n = r.node;
    const isOpen = open.has(keyOf(n.steps));
    shown.push(
      <div
        key={keyOf(n.steps)}
        role="treeitem"
        aria-level={r.level}
        aria-expanded={n.size ? isOpen : undefined}
        aria-selected={i === selected}
        tabIndex={i === selected ? 0 : -1}
        data-pos={i}
        data-path={pathText(n.steps)}
        class={`jt-row ${i === selected ? "is-selected" : ""}`}
        style={style}
        onClick={() => {
          setSelected(i);
          toggle(n);
        }}
      >
        <span class="jt-twisty" aria-hidden="true">
          {n.size ? (isOpen ? "▾" : "▸") : ""}
        </span>
        <span class={typeof n.key === "number" ? "jt-index" : "j-key"}>{typeof n.key === "number" ? n.key : JSON.stringify(n.key)}</span>
        <span class="jt-colon">: </span>
        <span class={`jt-value jt-${n.kind}`}>{label(n)}</span>
      </div>,
    );
  }

  const copy = async (what: "path" | "value") => {
    if (!currentSteps) return;
    const text = what === "path" ? pathText(currentSteps) : await doc.value(currentSteps);
    if (await copyText(text)) toast(what === "path" ? `Copied ${pathText(currentSteps)}` : "Copied the value", "info");
    else toast("Could not copy to the clipboard", "error");
  };

  if (!root.size) return <pre class="json-view">{root.preview}</pre>;
  return (
    <div class="json-tree" data-testid="response-tree">
      <div class="jt-toolbar" role="toolbar" aria-label="Selected node">
        <code class="jt-path mono" data-testid="tree-path">
          {currentSteps ? pathText(currentSteps) : "$"}
        </code>
        <span class="status-spacer" />
        <button type="button" class="btn btn-ghost btn-sm" disabled={!currentSteps} onClick={() => void copy("path")} data-testid="tree-copy-path">
          <IconCopy />
          <span>Copy path</span>
        </button>
        <button type="button" class="btn btn-ghost btn-sm" disabled={!currentSteps} onClick={() => void copy("value")} data-testid="tree-copy-value">
          <IconCopy />
          <span>Copy value</span>
        </button>
      </div>
      <div class="jt-scroller" ref={scroller} onScroll={() => setScrollTop(scroller.current?.scrollTop ?? 0)}>
        <div role="tree" aria-label={treeLabel} class="jt-tree" style={{ height: `${rows.length * ROW}px` }} onKeyDown={onKey}>
          {shown}
        </div>
      </div>
    </div>
  );
}
