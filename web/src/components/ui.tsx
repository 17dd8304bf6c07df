import type { ComponentChildren, TargetedKeyboardEvent } from "preact";
import { useState } from "preact/hooks";
import type { MethodInfo } from "../gen/catalog/v1/catalog_pb";
import { copyText } from "../lib/format";
import { toast } from "../state/store";
import { IconCheck, IconCopy } from "./icons";

export type MethodKind = "unary" | "server" | "client" | "bidi";

export function methodKind(m: Pick<MethodInfo, "clientStreaming" | "serverStreaming">): MethodKind {
  if (m.clientStreaming && m.serverStreaming) return "bidi";
  if (m.clientStreaming) return "client";
  if (m.serverStreaming) return "server";
  return "unary";
}

const KIND_TITLE: Record<MethodKind, string> = {
  unary: "Unary: one request, one response",
  server: "Server streaming: one request, a stream of responses",
  client: "Client streaming: a stream of requests, one response",
  bidi: "Bidirectional streaming: streams both ways",
};

export function KindBadge({ kind, long }: { kind: MethodKind; long?: boolean }) {
  const text = long ? { unary: "unary", server: "server streaming", client: "client streaming", bidi: "bidi streaming" }[kind] : kind;
  return (
    <span class={`badge kind-${kind}`} title={KIND_TITLE[kind]}>
      {text}
    </span>
  );
}

export function Spinner({ label = "Loading" }: { label?: string }) {
  return <span class="spinner" role="status" aria-label={label} />;
}

export function CopyButton({ text, label = "Copy", class: cls }: { text: string | (() => string); label?: string; class?: string }) {
  const [done, setDone] = useState(false);
  return (
    <button
      type="button"
      class={`btn btn-ghost btn-sm ${cls ?? ""}`}
      onClick={async () => {
        const ok = await copyText(typeof text === "function" ? text() : text);
        if (ok) {
          setDone(true);
          window.setTimeout(() => setDone(false), 1500);
        } else {
          toast("Could not copy to the clipboard", "error");
        }
      }}
    >
      {done ? <IconCheck /> : <IconCopy />}
      <span>{done ? "Copied" : label}</span>
    </button>
  );
}

export interface TabDef {
  id: string;
  label: ComponentChildren;
  disabled?: boolean;
}

/** Accessible tabs (arrow keys move between tabs). */
export function Tabs(props: { tabs: TabDef[]; active: string; onChange: (id: string) => void; label: string; idPrefix: string; small?: boolean }) {
  const onKey = (e: TargetedKeyboardEvent<HTMLDivElement>) => {
    if (e.key !== "ArrowRight" && e.key !== "ArrowLeft" && e.key !== "Home" && e.key !== "End") return;
    const enabled = props.tabs.filter((t) => !t.disabled);
    const i = enabled.findIndex((t) => t.id === props.active);
    let next = i;
    if (e.key === "ArrowRight") next = (i + 1) % enabled.length;
    if (e.key === "ArrowLeft") next = (i - 1 + enabled.length) % enabled.length;
    if (e.key === "Home") next = 0;
    if (e.key === "End") next = enabled.length - 1;
    e.preventDefault();
    props.onChange(enabled[next].id);
    const el = document.getElementById(`${props.idPrefix}-tab-${enabled[next].id}`);
    el?.focus();
  };
  return (
    <div class={`tabs ${props.small ? "tabs-sm" : ""}`} role="tablist" aria-label={props.label} onKeyDown={onKey}>
      {props.tabs.map((t) => (
        <button
          type="button"
          role="tab"
          id={`${props.idPrefix}-tab-${t.id}`}
          aria-selected={t.id === props.active}
          aria-controls={`${props.idPrefix}-panel`}
          tabIndex={t.id === props.active ? 0 : -1}
          disabled={t.disabled}
          class="tab"
          onClick={() => props.onChange(t.id)}
        >
          {t.label}
        </button>
      ))}
    </div>
  );
}

export function Paragraphs({ text, class: cls }: { text: string; class?: string }) {
  const paras = text
    .replace(/\r\n/g, "\n")
    .split(/\n\s*\n/)
    .map((p) => p.trim())
    .filter(Boolean);
  return (
    <div class={`doc ${cls ?? ""}`}>
      {paras.map((p) => (
        <p>{renderInline(p)}</p>
      ))}
    </div>
  );
}

/** `code` spans in comments become <code>; everything else stays text. */
function renderInline(p: string): ComponentChildren {
  const parts = p.split(/(`[^`]+`)/g);
  return parts.map((part) => (part.startsWith("`") && part.endsWith("`") && part.length > 2 ? <code>{part.slice(1, -1)}</code> : part));
}
