import type { TargetedKeyboardEvent } from "preact";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { ServiceInfo } from "../gen/catalog/v1/catalog_pb";
import { methodHash, navigate } from "../lib/route";
import { useAppState } from "../state/store";
import { IconChevron, IconSearch } from "./icons";
import { KindBadge, methodKind } from "./ui";

type Row =
  | { type: "package"; id: string; name: string; count: number }
  | { type: "service"; id: string; service: ServiceInfo; short: string }
  | { type: "method"; id: string; service: ServiceInfo; method: ServiceInfo["methods"][number] };

/** Past this many rows the tree is windowed: fixed-height rows, only those in view rendered. */
export const WINDOW_AFTER = 300;
const ROW_H = 30;
const OVERSCAN = 10;

function matches(q: string, ...texts: string[]): boolean {
  return texts.some((t) => t.toLowerCase().includes(q));
}

export function Sidebar({ onNavigate }: { onNavigate: () => void }) {
  const { services, route, booted, servicesError } = useAppState();
  const [filter, setFilter] = useState("");
  const [collapsed, setCollapsed] = useState<Set<string>>(new Set());
  const [focusId, setFocusId] = useState<string | null>(null);
  // Reflection/health services are plumbing: hidden unless asked for.
  const [showInfra, setShowInfra] = useState(false);
  const infraCount = services.filter((s) => s.infrastructure).length;
  const listed = showInfra ? services : services.filter((s) => !s.infrastructure);
  const treeRef = useRef<HTMLUListElement>(null);
  const filterRef = useRef<HTMLInputElement>(null);

  const rows = useMemo(() => {
    const q = filter.trim().toLowerCase();
    const byPkg = new Map<string, ServiceInfo[]>();
    for (const s of listed) {
      const pkg = s.package || "(no package)";
      if (!byPkg.has(pkg)) byPkg.set(pkg, []);
      byPkg.get(pkg)!.push(s);
    }
    const out: Row[] = [];
    for (const [pkg, list] of [...byPkg.entries()].sort(([a], [b]) => a.localeCompare(b))) {
      const pkgRows: Row[] = [];
      let count = 0;
      for (const s of list) {
        const short = s.package ? s.name.slice(s.package.length + 1) : s.name;
        const serviceHit = !q || matches(q, s.name);
        const methods = s.methods.filter((m) => serviceHit || matches(q, m.name, `${short}.${m.name}`, `${short}/${m.name}`));
        if (!methods.length && !(serviceHit && q === "")) continue;
        count += methods.length;
        const sid = `s:${s.name}`;
        pkgRows.push({ type: "service", id: sid, service: s, short });
        if (q || !collapsed.has(sid)) {
          for (const m of methods) pkgRows.push({ type: "method", id: `m:${s.name}/${m.name}`, service: s, method: m });
        }
      }
      if (!pkgRows.length) continue;
      const pid = `p:${pkg}`;
      out.push({ type: "package", id: pid, name: pkg, count });
      if (q || !collapsed.has(pid)) out.push(...pkgRows);
    }
    return out;
  }, [services, filter, collapsed, showInfra]);

  const windowed = rows.length > WINDOW_AFTER;
  const [view, setView] = useState({ top: 0, height: 900 });
  const scroller = () => treeRef.current?.closest<HTMLElement>(".sidebar") ?? null;
  useEffect(() => {
    if (!windowed) return undefined;
    const el = scroller();
    if (!el) return undefined;
    let queued = false;
    const measure = () => {
      queued = false;
      const tree = treeRef.current;
      if (!tree) return;
      const top = el.scrollTop - (tree.getBoundingClientRect().top - el.getBoundingClientRect().top + el.scrollTop);
      setView({ top, height: el.clientHeight });
    };
    const onScroll = () => {
      if (!queued) {
        queued = true;
        requestAnimationFrame(measure);
      }
    };
    measure();
    el.addEventListener("scroll", onScroll, { passive: true });
    window.addEventListener("resize", onScroll);
    return () => {
      el.removeEventListener("scroll", onScroll);
      window.removeEventListener("resize", onScroll);
    };
  }, [windowed, rows.length]);

  const activeId = route.page === "method" ? `m:${route.service}/${route.method}` : null;
  const tabStopId = rows.some((r) => r.id === focusId) ? focusId : (rows.find((r) => r.id === activeId)?.id ?? rows[0]?.id ?? null);

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const t = e.target as HTMLElement;
      const typing = t.closest("input, textarea, select, [contenteditable=true]");
      if (e.key === "/" && !typing && !e.ctrlKey && !e.metaKey) {
        e.preventDefault();
        filterRef.current?.focus();
        filterRef.current?.select();
      }
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, []);

  const focusRow = (id: string) => {
    setFocusId(id);
    if (windowed) {
      // Bring the row into view first: it may not be rendered yet.
      const el = scroller();
      const tree = treeRef.current;
      const i = rows.findIndex((r) => r.id === id);
      if (el && tree && i >= 0) {
        const treeTop = tree.getBoundingClientRect().top - el.getBoundingClientRect().top + el.scrollTop;
        const rowTop = treeTop + i * ROW_H;
        if (rowTop < el.scrollTop + ROW_H) el.scrollTop = rowTop - ROW_H;
        else if (rowTop + 2 * ROW_H > el.scrollTop + el.clientHeight) el.scrollTop = rowTop + 2 * ROW_H - el.clientHeight;
        setView({ top: el.scrollTop - treeTop, height: el.clientHeight });
      }
    }
    requestAnimationFrame(() => {
      treeRef.current?.querySelector<HTMLElement>(`[data-row="${CSS.escape(id)}"]`)?.focus();
    });
  };

  const toggle = (id: string, open?: boolean) => {
    setCollapsed((c) => {
      const n = new Set(c);
      const isOpen = !n.has(id);
      if (open === undefined ? isOpen : !open) n.add(id);
      else n.delete(id);
      return n;
    });
  };

  const activate = (r: Row) => {
    if (r.type === "method") {
      navigate(methodHash(r.service.name, r.method.name));
      onNavigate();
    } else toggle(r.id);
  };

  const onTreeKey = (e: TargetedKeyboardEvent<HTMLUListElement>) => {
    const i = rows.findIndex((r) => r.id === (focusId ?? tabStopId));
    if (i < 0) return;
    const r = rows[i];
    const key = e.key;
    if (key === "ArrowDown" && i < rows.length - 1) focusRow(rows[i + 1].id);
    else if (key === "ArrowUp") {
      if (i > 0) focusRow(rows[i - 1].id);
      else filterRef.current?.focus();
    } else if (key === "Home") focusRow(rows[0].id);
    else if (key === "End") focusRow(rows[rows.length - 1].id);
    else if (key === "Enter" || key === " ") activate(r);
    else if (key === "ArrowRight" && r.type !== "method") toggle(r.id, true);
    else if (key === "ArrowLeft") {
      if (r.type !== "method" && !collapsed.has(r.id) && !filter) toggle(r.id, false);
      else {
        const parentType = r.type === "method" ? "service" : "package";
        for (let j = i - 1; j >= 0; j--) if (rows[j].type === parentType) return focusRow(rows[j].id);
      }
    } else return;
    e.preventDefault();
  };

  const onFilterKey = (e: TargetedKeyboardEvent<HTMLInputElement>) => {
    if (e.key === "ArrowDown" && rows.length) {
      e.preventDefault();
      focusRow((rows.find((r) => r.type === "method") ?? rows[0]).id);
    } else if (e.key === "Enter") {
      const first = rows.find((r) => r.type === "method");
      if (first) activate(first);
    } else if (e.key === "Escape") {
      setFilter("");
    }
  };

  const methodCount = services.reduce((n, s) => n + s.methods.length, 0);

  /** The rows to render: all of them, or (windowed) those in view plus the tab stop. */
  const shownRows = (): { r: Row; i: number }[] => {
    if (!windowed) return rows.map((r, i) => ({ r, i }));
    const first = Math.max(0, Math.floor(view.top / ROW_H) - OVERSCAN);
    const last = Math.min(rows.length, Math.ceil((view.top + view.height) / ROW_H) + OVERSCAN);
    const out: { r: Row; i: number }[] = [];
    for (let i = first; i < last; i++) out.push({ r: rows[i], i });
    const stop = rows.findIndex((r) => r.id === tabStopId);
    if (stop >= 0 && (stop < first || stop >= last)) out.push({ r: rows[stop], i: stop });
    return out;
  };

  return (
    <nav class="sidebar-inner" aria-label="Services and methods">
      <div class="filter">
        <IconSearch class="icon filter-icon" />
        <input
          ref={filterRef}
          type="search"
          placeholder="Filter methods"
          aria-label="Filter services and methods"
          value={filter}
          onInput={(e) => setFilter(e.currentTarget.value)}
          onKeyDown={onFilterKey}
          disabled={!services.length}
        />
        <kbd class="filter-kbd" aria-hidden="true">
          /
        </kbd>
      </div>
      {servicesError && <p class="sidebar-note error-text">Could not list services: {servicesError}</p>}
      {booted && !services.length && !servicesError && (
        <div class="sidebar-empty">
          <p>No services yet.</p>
          <p class="muted">
            <a href="#/sources">Load schemas</a> from a folder, a reflection endpoint, Buf or Git — or drop .proto files anywhere on the page.
          </p>
        </div>
      )}
      {services.length > 0 && (
        <p class="sidebar-summary muted small" aria-live="polite">
          {filter ? `${rows.filter((r) => r.type === "method").length} of ${methodCount} methods` : `${services.length} services · ${methodCount} methods`}
          {infraCount > 0 && (
            <button type="button" class="link-btn" data-testid="toggle-infra" aria-pressed={showInfra} onClick={() => setShowInfra(!showInfra)}>
              {showInfra ? ` · hide ${infraCount} infrastructure` : ` · show ${infraCount} infrastructure (reflection)`}
            </button>
          )}
        </p>
      )}
      {services.length > 0 && rows.length === 0 && <p class="sidebar-note muted">No method matches “{filter}”.</p>}
      <ul
        class={`tree ${windowed ? "is-windowed" : ""}`}
        role="tree"
        aria-label="Services"
        ref={treeRef}
        onKeyDown={onTreeKey}
        style={windowed ? { height: `${rows.length * ROW_H}px` } : undefined}
      >
        {shownRows().map(({ r, i }) => {
          const tabIndex = r.id === tabStopId ? 0 : -1;
          const common = {
            "data-row": r.id,
            tabIndex,
            onFocus: () => setFocusId(r.id),
            style: windowed ? { top: `${i * ROW_H}px` } : undefined,
          };
          if (r.type === "package") {
            const open = !!filter || !collapsed.has(r.id);
            return (
              <li key={r.id} role="treeitem" aria-level={1} aria-expanded={open} class="tree-pkg" {...common} onClick={() => toggle(r.id)}>
                <IconChevron class={`icon chevron ${open ? "open" : ""}`} />
                <span class="pkg-name">{r.name}</span>
              </li>
            );
          }
          if (r.type === "service") {
            const open = !!filter || !collapsed.has(r.id);
            return (
              <li
                key={r.id}
                role="treeitem"
                aria-level={2}
                aria-expanded={open}
                class={`tree-svc ${r.service.deprecated ? "is-deprecated" : ""}`}
                title={r.service.name}
                {...common}
                onClick={() => toggle(r.id)}
              >
                <IconChevron class={`icon chevron ${open ? "open" : ""}`} />
                <span class="svc-name">{r.short}</span>
                {r.service.fromBase && (
                  <span class="badge badge-base" title="From the shared base schema of this catalog">
                    shared
                  </span>
                )}
              </li>
            );
          }
          const active = r.id === activeId;
          return (
            <li
              key={r.id}
              role="treeitem"
              aria-level={3}
              aria-selected={active}
              aria-current={active ? "page" : undefined}
              class={`tree-method ${active ? "is-active" : ""} ${r.method.deprecated ? "is-deprecated" : ""}`}
              {...common}
              onClick={() => activate(r)}
            >
              <span class="method-name">{r.method.name}</span>
              <KindBadge kind={methodKind(r.method)} />
            </li>
          );
        })}
      </ul>
    </nav>
  );
}
