import { useEffect, useRef, useState } from "preact/hooks";
import { SignInPrompt } from "./components/Auth";
import { CollectionsBar } from "./components/collections/CollectionsBar";
import { Header } from "./components/Header";
import { Home } from "./components/Home";
import { IconAlert, IconUpload, IconX } from "./components/icons";
import { MethodPage } from "./components/MethodPage";
import { Sidebar } from "./components/Sidebar";
import { runUpload, SourcesPanel } from "./components/Sources";
import { TypeIndex, TypePage } from "./components/TypeIndex";
import { navigate } from "./lib/route";
import { describeSource } from "./lib/sources";
import { collectDropped } from "./lib/upload";
import { reloadLostSources, setState, toast, useAppState } from "./state/store";

export function App() {
  const { route, toasts } = useAppState();
  const [navOpen, setNavOpen] = useState(false);
  const mainRef = useRef<HTMLElement>(null);

  useEffect(() => {
    mainRef.current?.scrollTo?.({ top: 0 });
  }, [route.page === "method" ? `${route.service}/${route.method}` : route.page]);

  return (
    <div class="app">
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <Header onToggleNav={() => setNavOpen(!navOpen)} />
      <CollectionsBar />
      <SignInPrompt />
      <ExpiredBanner />
      <div class="layout">
        <aside class={`sidebar ${navOpen ? "is-open" : ""}`}>
          <Sidebar onNavigate={() => setNavOpen(false)} />
        </aside>
        {navOpen && <div class="scrim" onClick={() => setNavOpen(false)} aria-hidden="true" />}
        <main id="main" ref={mainRef} tabIndex={-1}>
          {route.page === "home" && <Home />}
          {route.page === "sources" && (
            <div class="page">
              <header class="page-head">
                <h1>Schema sources</h1>
              </header>
              <SourcesPanel />
            </div>
          )}
          {route.page === "method" && <MethodPage serviceName={route.service} methodName={route.method} />}
          {route.page === "types" && <TypeIndex query={route.query} />}
          {route.page === "type" && <TypePage name={route.name} />}
        </main>
      </div>
      <DropOverlay />
      <div class="toasts" role="status" aria-live="polite">
        {toasts.map((t) => (
          <div class={`toast toast-${t.kind}`}>{t.text}</div>
        ))}
      </div>
    </div>
  );
}

const LOST_TEXT = {
  expired: "Your session expired",
  closed: "Your session was closed",
  unknown: "The catalog no longer knows your session (did it restart?)",
} as const;

function ExpiredBanner() {
  const { expired } = useAppState();
  const [busy, setBusy] = useState(false);
  if (!expired) return null;
  const n = expired.sources.length;
  return (
    <div class="banner banner-warn" role="alert" data-testid="session-expired">
      <IconAlert />
      <div class="banner-text">
        <strong>{LOST_TEXT[expired.reason]}; schemas must be loaded again.</strong>{" "}
        <span>
          The catalog started a new, empty session for you
          {n ? ` — it had ${n} source${n === 1 ? "" : "s"}: ${expired.sources.map((s) => describeSource(s.spec)).join(", ")}.` : "."}
        </span>
      </div>
      {n > 0 && (
        <button
          type="button"
          class="btn btn-primary btn-sm"
          disabled={busy}
          onClick={async () => {
            setBusy(true);
            const r = await reloadLostSources();
            setBusy(false);
            if (r.failed.length) toast(`Could not reload: ${r.failed.join("; ")}`, "error", 8000);
            else toast(`Reloaded ${r.ok} source${r.ok === 1 ? "" : "s"}`, "success");
          }}
        >
          {busy ? "Loading…" : "Load them again"}
        </button>
      )}
      <button type="button" class="btn btn-ghost btn-sm" onClick={() => navigate("#/sources")}>
        Sources
      </button>
      <button type="button" class="btn btn-ghost btn-icon btn-sm" aria-label="Dismiss" onClick={() => setState({ expired: null })}>
        <IconX />
      </button>
    </div>
  );
}

function DropOverlay() {
  const [active, setActive] = useState(false);
  const depth = useRef(0);
  useEffect(() => {
    const hasFiles = (e: DragEvent) => !!e.dataTransfer && Array.from(e.dataTransfer.types).includes("Files");
    const enter = (e: DragEvent) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      depth.current++;
      setActive(true);
    };
    const over = (e: DragEvent) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      if (e.dataTransfer) e.dataTransfer.dropEffect = "copy";
    };
    const leave = (e: DragEvent) => {
      if (!hasFiles(e)) return;
      depth.current = Math.max(0, depth.current - 1);
      if (depth.current === 0) setActive(false);
    };
    const drop = async (e: DragEvent) => {
      if (!hasFiles(e) || !e.dataTransfer) return;
      e.preventDefault();
      depth.current = 0;
      setActive(false);
      const { files, root } = await collectDropped(e.dataTransfer);
      if (!files.length) return;
      navigate("#/sources");
      await runUpload(files, root);
    };
    window.addEventListener("dragenter", enter);
    window.addEventListener("dragover", over);
    window.addEventListener("dragleave", leave);
    window.addEventListener("drop", drop);
    return () => {
      window.removeEventListener("dragenter", enter);
      window.removeEventListener("dragover", over);
      window.removeEventListener("dragleave", leave);
      window.removeEventListener("drop", drop);
    };
  }, []);
  if (!active) return null;
  return (
    <div class="drop-overlay" aria-hidden="true">
      <div class="drop-card">
        <IconUpload size={36} />
        <p>
          <strong>Drop to load</strong>
        </p>
        <p class="muted">.proto files, a folder of them, or a descriptor set</p>
      </div>
    </div>
  );
}
