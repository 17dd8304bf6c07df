import type { TargetedKeyboardEvent } from "preact";
import { useMemo, useState } from "preact/hooks";
import { catalog } from "../api/client";
import { exampleMessage, type Json, type JsonObject } from "../schema/example";
import type { Located, SchemaSet } from "../schema/types";
import { parseJson, rulePolicy, validate, type ValidationError } from "../schema/validate";
import { MessageForm } from "./FormEditor";
import { IconCopy, IconPlus, IconTrash } from "./icons";
import { Tabs } from "./ui";

export type EditorMode = "form" | "json";

export interface Check {
  syntax: { message: string; line?: number; column?: number } | null;
  errors: ValidationError[];
  value: Json | null;
}

export function checkMessage(set: SchemaSet, located: Located | null, text: string): Check {
  const parsed = parseJson(text);
  if (!parsed.ok) return { syntax: { message: parsed.message, line: parsed.line, column: parsed.column }, errors: [], value: null };
  const errors = located ? validate(set, parsed.value, located.schema, located.root) : [];
  return { syntax: null, errors, value: parsed.value };
}

export function pretty(v: Json): string {
  return JSON.stringify(v, null, 2);
}

export function exampleText(set: SchemaSet, located: Located | null): string {
  return pretty(located ? exampleMessage(set, located) : {});
}

interface Props {
  set: SchemaSet;
  located: Located | null;
  typeName: string;
  messages: string[];
  active: number;
  onChange: (messages: string[], active: number) => void;
  multi: boolean;
  mode: EditorMode;
  onMode: (m: EditorMode) => void;
  idPrefix: string;
}

export function RequestEditor(props: Props) {
  const { set, located, messages, active, onChange, multi, mode, onMode, idPrefix } = props;
  const idx = Math.min(active, Math.max(0, messages.length - 1));
  const text = messages[idx] ?? "{}";
  const check = useMemo(() => checkMessage(set, located, text), [set, located, text]);
  const setText = (t: string) => {
    const next = [...messages];
    next[idx] = t;
    onChange(next, idx);
  };
  const formBlocked = check.syntax !== null;

  const onJsonKey = (e: TargetedKeyboardEvent<HTMLTextAreaElement>) => {
    if (e.key === "Tab" && !e.shiftKey && !e.ctrlKey && !e.metaKey && !e.altKey) {
      // Indent instead of leaving the editor; Esc then Tab moves focus on.
      const ta = e.currentTarget;
      if (ta.dataset.escaped === "1") {
        ta.dataset.escaped = "";
        return;
      }
      e.preventDefault();
      const { selectionStart: s, selectionEnd: en, value } = ta;
      const next = `${value.slice(0, s)}  ${value.slice(en)}`;
      setText(next);
      requestAnimationFrame(() => {
        ta.selectionStart = ta.selectionEnd = s + 2;
      });
    } else if (e.key === "Escape") {
      e.currentTarget.dataset.escaped = "1";
    }
  };

  return (
    <div class="request-editor">
      <div class="editor-bar">
        <Tabs
          small
          label="Request editor mode"
          idPrefix={`${idPrefix}-mode`}
          active={mode}
          onChange={(m) => onMode(m as EditorMode)}
          tabs={[
            { id: "form", label: "Form", disabled: formBlocked && mode === "json" },
            { id: "json", label: "JSON" },
          ]}
        />
        <div class="editor-actions">
          {mode === "json" && !check.syntax && (
            <button type="button" class="btn btn-ghost btn-sm" onClick={() => setText(pretty(check.value as Json))}>
              Format
            </button>
          )}
          <button type="button" class="btn btn-ghost btn-sm" onClick={() => setText(exampleText(set, located))} title="Replace with the example request">
            Reset to example
          </button>
        </div>
      </div>
      {multi && (
        <div class="msg-strip" role="group" aria-label="Request messages">
          <span class="muted small">Messages sent in order:</span>
          {messages.map((_, i) => (
            <button
              type="button"
              class={`chip ${i === idx ? "is-active" : ""}`}
              aria-pressed={i === idx}
              onClick={() => onChange(messages, i)}
            >
              #{i + 1}
            </button>
          ))}
          <button type="button" class="btn btn-ghost btn-sm" onClick={() => onChange([...messages, exampleText(set, located)], messages.length)} aria-label="Add a request message">
            <IconPlus /> <span>Add</span>
          </button>
          <button type="button" class="btn btn-ghost btn-sm" onClick={() => onChange([...messages.slice(0, idx + 1), text, ...messages.slice(idx + 1)], idx + 1)} aria-label={`Duplicate message ${idx + 1}`}>
            <IconCopy /> <span>Duplicate</span>
          </button>
          <button
            type="button"
            class="btn btn-ghost btn-sm"
            disabled={messages.length <= 1}
            onClick={() => onChange(messages.filter((_, i) => i !== idx), Math.max(0, idx - 1))}
            aria-label={`Remove message ${idx + 1}`}
          >
            <IconTrash /> <span>Remove</span>
          </button>
        </div>
      )}
      <div id={`${idPrefix}-mode-panel`} role="tabpanel" aria-labelledby={`${idPrefix}-mode-tab-${mode}`}>
        {mode === "form" && !formBlocked && located && (
          <MessageForm
            set={set}
            located={located}
            value={check.value as Json}
            onChange={(v: JsonObject) => setText(pretty(v))}
            idPrefix={`${idPrefix}-m${idx}`}
          />
        )}
        {mode === "form" && !located && <p class="muted">No schema for {props.typeName}: edit the request as JSON.</p>}
        {mode === "json" && (
          <textarea
            class="json-editor mono"
            aria-label={multi ? `Request message ${idx + 1} as JSON` : "Request as JSON"}
            data-testid="request-json"
            spellcheck={false}
            rows={Math.min(24, Math.max(6, text.split("\n").length + 1))}
            value={text}
            onInput={(e) => setText(e.currentTarget.value)}
            onKeyDown={onJsonKey}
          />
        )}
      </div>
      <ValidationLine check={check} typeName={props.typeName} hasRules={hasRules(located)} />
    </div>
  );
}

/**
 * Why a request breaks its buf.validate rules and is not sent (null: send it). The
 * "Send anyway" switch lets it through, to test the server's own validation.
 */
export function ruleRefusal(check: Check, what: string): string | null {
  if (rulePolicy.sendAnyway) return null;
  const broken = check.errors.find((e) => e.rule);
  if (!broken) return null;
  return `Not sent: ${what} breaks a validation rule at ${broken.path}: ${broken.message}. Tick "Send anyway" to test the server's own validation.`;
}

/**
 * Asks the catalog which buf.validate rules the messages break — every rule, CEL
 * expressions included, checked by protovalidate as the server would — and says why
 * they are not sent (null: send them, also when the check itself failed).
 */
export async function serverRuleRefusal(typeName: string, texts: string[], multi: boolean): Promise<string | null> {
  if (rulePolicy.sendAnyway) return null;
  for (let i = 0; i < texts.length; i++) {
    let found;
    try {
      found = (await catalog.validateMessage({ typeName, messageJson: texts[i] })).violations;
    } catch {
      return null; // the check is a convenience: the call itself reports real problems
    }
    const v = found[0];
    if (v) {
      const what = multi ? `message #${i + 1}` : "the request";
      const where = v.fieldPath ? ` at ${v.fieldPath}` : "";
      const more = found.length > 1 ? ` (and ${found.length - 1} more)` : "";
      return `Not sent: ${what} breaks the validation rule ${v.ruleId}${where}: ${v.message}${more}. Tick "Send anyway" to test the server's own validation.`;
    }
  }
  return null;
}

function SendAnyway() {
  const [on, setOn] = useState(rulePolicy.sendAnyway);
  return (
    <label class="send-anyway small">
      <input
        type="checkbox"
        data-testid="send-anyway"
        checked={on}
        onChange={(e) => {
          rulePolicy.sendAnyway = e.currentTarget.checked;
          setOn(rulePolicy.sendAnyway);
        }}
      />{" "}
      Send anyway (test the server's own validation)
    </label>
  );
}

/** Whether a message or one of its own fields carries buf.validate rules. */
function hasRules(located: Located | null): boolean {
  const s = located?.schema;
  if (!s) return false;
  return !!s["x-buf-validate"] || Object.values(s.properties ?? {}).some((p) => !!p["x-buf-validate"]);
}

export function ValidationLine({ check, typeName, hasRules = false }: { check: Check; typeName: string; hasRules?: boolean }) {
  if (check.syntax) {
    const at = check.syntax.line ? ` (line ${check.syntax.line}, column ${check.syntax.column})` : "";
    return (
      <p class="validation is-error" role="status" data-testid="validation">
        JSON syntax error{at}: {check.syntax.message}
      </p>
    );
  }
  if (check.errors.length) {
    const first = check.errors[0];
    return (
      <div class="validation is-error" role="status" data-testid="validation">
        <span class="mono path">{first.path}</span> {first.message}
        {check.errors.length > 1 && <span class="muted"> (and {check.errors.length - 1} more)</span>}
        {check.errors.some((e) => e.rule) && <SendAnyway />}
      </div>
    );
  }
  return (
    <p class="validation is-ok" role="status" data-testid="validation">
      Valid <span class="mono">{typeName}</span>
      {hasRules && <span class="muted"> (its buf.validate rules, CEL too, are checked by the catalog when you send)</span>}
      {hasRules && <SendAnyway />}
    </p>
  );
}
