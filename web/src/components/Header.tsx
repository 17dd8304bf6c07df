import { useEffect, useRef, useState } from "preact/hooks";
import { countdown } from "../lib/format";
import { navigate } from "../lib/route";
import { applyTheme, currentTheme, type Theme } from "../lib/theme";
import { closeSession, refreshSession, toast, useAppState } from "../state/store";
import { WhoAmI } from "./Auth";
import { IconDatabase, IconLogo, IconMenu, IconMoon, IconSun } from "./icons";

export function Header({ onToggleNav }: { onToggleNav: () => void }) {
  const [theme, setTheme] = useState<Theme>(currentTheme());
  const toggle = () => {
    const next = theme === "dark" ? "light" : "dark";
    applyTheme(next, true);
    setTheme(next);
  };
  return (
    <header class="topbar">
      <button type="button" class="btn btn-ghost btn-icon nav-toggle" aria-label="Show services" onClick={onToggleNav}>
        <IconMenu />
      </button>
      <a class="brand" href="#/" aria-label="connectrpc-catalog home">
        <IconLogo />
        <span class="brand-name">
          connectrpc<span class="brand-dim">-catalog</span>
        </span>
      </a>
      <div class="topbar-spacer" />
      <a class="btn btn-ghost btn-sm topbar-types" href="#/types" data-testid="types-link">
        Types
      </a>
      <button type="button" class="btn btn-secondary btn-sm" aria-label="Load schemas" title="Load schemas" onClick={() => navigate("#/sources")}>
        <IconDatabase />
        <span>Load schemas</span>
      </button>
      <WhoAmI />
      <SessionChip />
      <button
        type="button"
        class="btn btn-ghost btn-icon"
        onClick={toggle}
        aria-label={theme === "dark" ? "Switch to the light theme" : "Switch to the dark theme"}
        title={theme === "dark" ? "Light theme" : "Dark theme"}
      >
        {theme === "dark" ? <IconSun /> : <IconMoon />}
      </button>
    </header>
  );
}

function SessionChip() {
  const { session } = useAppState();
  const [now, setNow] = useState(Date.now());
  const [open, setOpen] = useState(false);
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const t = window.setInterval(() => setNow(Date.now()), 5000);
    return () => window.clearInterval(t);
  }, []);
  useEffect(() => {
    if (!open) return;
    const close = (e: MouseEvent | KeyboardEvent) => {
      if (e instanceof KeyboardEvent ? e.key === "Escape" : !ref.current?.contains(e.target as Node)) setOpen(false);
    };
    document.addEventListener("mousedown", close);
    document.addEventListener("keydown", close);
    return () => {
      document.removeEventListener("mousedown", close);
      document.removeEventListener("keydown", close);
    };
  }, [open]);
  const left = session && session.ttlSeconds > 0 ? session.ttlSeconds * 1000 - (now - session.lastActivity) : Number.POSITIVE_INFINITY;
  const expired = left <= 0;
  const checked = useRef<number | null>(null);
  useEffect(() => {
    // Idle past the TTL: ask the server, which answers with a new session if ours is
    // gone; the "session expired" notice then tells the user at once, not at the next click.
    if (session && left < -2000 && checked.current !== session.lastActivity) {
      checked.current = session.lastActivity;
      void refreshSession();
    }
  }, [session, left < -2000]);
  if (!session) return <span class="session-chip muted">No session</span>;
  const soon = !expired && left < 5 * 60 * 1000;
  return (
    <div class="session" ref={ref}>
      <button
        type="button"
        class={`session-chip ${expired ? "is-expired" : soon ? "is-soon" : ""}`}
        aria-expanded={open}
        aria-haspopup="dialog"
        onClick={() => setOpen(!open)}
        title="Your session keeps the schemas you loaded"
      >
        <span class="dot" aria-hidden="true" />
        <span class="session-text">
          {expired ? "Session expired" : `Session · ${Number.isFinite(left) ? `expires in ${countdown(left)}` : "active"}`}
        </span>
      </button>
      {open && (
        <div class="popover" role="dialog" aria-label="Session">
          <dl class="kv">
            <dt>Session id</dt>
            <dd>
              <code>{session.id}</code>
            </dd>
            <dt>Schemas</dt>
            <dd>
              {session.serviceCount} services from {session.fileCount} files
            </dd>
            <dt>Expires</dt>
            <dd>
              {expired
                ? "expired — the next action starts a new session"
                : `after ${Math.round(session.ttlSeconds / 60)} min without use (${countdown(left)} left)`}
            </dd>
            {session.createdAt && (
              <>
                <dt>Started</dt>
                <dd>{new Date(session.createdAt).toLocaleString()}</dd>
              </>
            )}
          </dl>
          <p class="muted small">
            Schemas you load live in this session on the server; the session id is kept in this browser tab only.
          </p>
          <button
            type="button"
            class="btn btn-danger btn-sm"
            onClick={async () => {
              setOpen(false);
              await closeSession();
              toast("Session ended; a new, empty one has started", "info");
              navigate("#/");
            }}
          >
            End session
          </button>
        </div>
      )}
    </div>
  );
}
