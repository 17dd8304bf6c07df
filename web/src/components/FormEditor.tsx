import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import { exampleMessage, newElement, type Json, type JsonObject } from "../schema/example";
import { messageFields, oneofGroups, ruleLines, typeLabel, type FieldInfo, type Located, type SchemaSet, type TypeInfo } from "../schema/types";
import { IconChevron, IconPlus, IconTrash, IconX } from "./icons";

// A form generated from a message's JSON Schema. The value edited is the
// message's proto3 JSON form, so that the form and the raw JSON editor share
// one model and stay in sync.

interface Ctx {
  set: SchemaSet;
  idPrefix: string;
}

function isObject(v: Json | undefined): v is JsonObject {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function idFor(ctx: Ctx, path: string): string {
  return `${ctx.idPrefix}-${path.replace(/[^A-Za-z0-9_-]+/g, "-")}`;
}

export function MessageForm(props: { set: SchemaSet; located: Located; value: Json; onChange: (v: JsonObject) => void; idPrefix: string }) {
  const ctx: Ctx = { set: props.set, idPrefix: props.idPrefix };
  const obj = isObject(props.value) ? props.value : {};
  return (
    <div class="form-root">
      <MessageFields ctx={ctx} located={props.located} value={obj} onChange={props.onChange} path="" depth={0} />
    </div>
  );
}

function withKey(obj: JsonObject, key: string, v: Json | undefined): JsonObject {
  const out: JsonObject = {};
  let placed = false;
  for (const [k, val] of Object.entries(obj)) {
    if (k === key) {
      placed = true;
      if (v !== undefined) out[k] = v;
    } else out[k] = val;
  }
  if (!placed && v !== undefined) out[key] = v;
  return out;
}

function MessageFields(props: { ctx: Ctx; located: Located; value: JsonObject; onChange: (v: JsonObject) => void; path: string; depth: number }) {
  const { ctx, located, value, onChange, path, depth } = props;
  const fields = messageFields(ctx.set, located);
  const groups = oneofGroups(located);
  if (!fields.length) return <p class="muted small form-empty">This message has no fields.</p>;
  const done = new Set<string>();
  const out: ComponentChildren[] = [];
  for (const f of fields) {
    if (f.oneof && groups[f.oneof] && groups[f.oneof].length > 0) {
      if (done.has(f.oneof)) continue;
      done.add(f.oneof);
      const members = fields.filter((x) => x.oneof === f.oneof);
      out.push(<OneofEditor ctx={ctx} group={f.oneof} members={members} value={value} onChange={onChange} path={path} depth={depth} />);
      continue;
    }
    out.push(
      <FieldEditor
        ctx={ctx}
        f={f}
        value={value[f.jsonName]}
        onChange={(v) => onChange(withKey(value, f.jsonName, v))}
        path={path ? `${path}.${f.jsonName}` : f.jsonName}
        depth={depth}
      />,
    );
  }
  return <div class="form-fields">{out}</div>;
}

function OneofEditor(props: { ctx: Ctx; group: string; members: FieldInfo[]; value: JsonObject; onChange: (v: JsonObject) => void; path: string; depth: number }) {
  const { ctx, group, members, value, onChange, path, depth } = props;
  const chosen = members.find((m) => m.jsonName in value && value[m.jsonName] !== null);
  const id = idFor(ctx, `${path}.oneof-${group}`);
  const pick = (name: string) => {
    let next: JsonObject = { ...value };
    for (const m of members) delete next[m.jsonName];
    const m = members.find((x) => x.jsonName === name);
    if (m) next = withKey(next, m.jsonName, m.label === "repeated" ? [] : m.label === "map" ? {} : newElement(ctx.set, m.type));
    onChange(next);
  };
  return (
    <fieldset class="oneof">
      <legend class="sr-only">oneof {group}</legend>
      <div class="form-row">
        <label class="form-label" for={id}>
          <span class="form-name mono">{group}</span>
          <span class="badge badge-oneof">oneof</span>
        </label>
        <div class="form-control">
          <select id={id} data-path={`${path ? `${path}.` : ""}${group}`} value={chosen?.jsonName ?? ""} onChange={(e) => pick(e.currentTarget.value)}>
            <option value="">(none)</option>
            {members.map((m) => (
              <option value={m.jsonName}>
                {m.jsonName} — {typeLabel(m)}
              </option>
            ))}
          </select>
          <p class="form-help">Choose which one of {members.map((m) => m.jsonName).join(", ")} to set.</p>
        </div>
      </div>
      {chosen && (
        <div class="oneof-member">
          <FieldEditor
            ctx={ctx}
            f={chosen}
            value={value[chosen.jsonName]}
            onChange={(v) => onChange(withKey(value, chosen.jsonName, v === undefined ? newElement(ctx.set, chosen.type) : v))}
            path={path ? `${path}.${chosen.jsonName}` : chosen.jsonName}
            depth={depth}
            inOneof
          />
        </div>
      )}
    </fieldset>
  );
}

/** What the form says under a field besides its comment: its default and its buf.validate rules. */
function fieldNotes(f: FieldInfo): string[] {
  const notes: string[] = [];
  if (f.schema.default !== undefined) notes.push(`default ${JSON.stringify(f.schema.default)}`);
  const rules = ruleLines(f.schema["x-buf-validate"]);
  if (rules.length) notes.push(`rules: ${rules.join(", ")}`);
  return notes;
}

function FieldLabel({ f, id, group }: { f: FieldInfo; id: string; group?: boolean }) {
  const body = (
    <>
      <span class={`form-name mono ${f.deprecated ? "strike" : ""}`}>{f.jsonName}</span>
      <span class="form-type mono">{typeLabel(f)}</span>
      {f.deprecated && <span class="badge badge-warn">deprecated</span>}
      {(f.label === "required" || f.schema["x-buf-validate"]?.required === true) && <span class="badge badge-warn">required</span>}
      {f.schema["x-proto-extension"] && <span class="badge">extension</span>}
    </>
  );
  // Blocks (messages, lists, maps) are groups named by this text, not form controls.
  if (group) {
    return (
      <span class="form-label" id={id}>
        {body}
      </span>
    );
  }
  return (
    <label class="form-label" for={id}>
      {body}
    </label>
  );
}

function FieldEditor(props: { ctx: Ctx; f: FieldInfo; value: Json | undefined; onChange: (v: Json | undefined) => void; path: string; depth: number; inOneof?: boolean }) {
  const { ctx, f, value, onChange, path, depth } = props;
  const id = idFor(ctx, path);
  const notes = fieldNotes(f);
  const help =
    f.description || notes.length ? (
      <p class="form-help" id={`${id}-help`}>
        {f.description}
        {notes.length > 0 && (
          <span class="form-rules" data-testid="form-rules">
            {f.description ? " " : ""}
            {notes.join(" · ")}
          </span>
        )}
      </p>
    ) : null;
  if (f.label === "repeated") {
    const list = Array.isArray(value) ? value : [];
    return (
      <div class="form-block" role="group" aria-labelledby={`${id}-label`}>
        <div class="form-block-head">
          <FieldLabel f={f} id={`${id}-label`} group />
          <span class="muted small">{list.length} item{list.length === 1 ? "" : "s"}</span>
        </div>
        {help}
        <ol class="form-list">
          {list.map((item, i) => (
            <li class="form-list-item">
              <span class="form-index mono muted">{i}</span>
              <div class="form-list-value">
                <ValueEditor
                  ctx={ctx}
                  t={f.type}
                  value={item}
                  onChange={(v) => {
                    const next = [...list];
                    next[i] = v === undefined ? newElement(ctx.set, f.type) : v;
                    onChange(next);
                  }}
                  id={`${id}-${i}`}
                  path={`${path}[${i}]`}
                  depth={depth + 1}
                  label={`${f.jsonName} item ${i}`}
                />
              </div>
              <button type="button" class="btn btn-ghost btn-icon btn-sm" aria-label={`Remove ${f.jsonName} item ${i}`} onClick={() => onChange(list.filter((_, j) => j !== i))}>
                <IconTrash />
              </button>
            </li>
          ))}
        </ol>
        <button type="button" id={`${id}-add`} class="btn btn-ghost btn-sm add-btn" data-path={path} onClick={() => onChange([...list, newElement(ctx.set, f.type)])}>
          <IconPlus /> <span>Add {f.jsonName} item</span>
        </button>
      </div>
    );
  }
  if (f.label === "map") {
    const obj = isObject(value) ? value : {};
    const entries = Object.entries(obj);
    const keyKind = f.mapKey ?? "string";
    const setEntry = (i: number, k: string, v: Json) => {
      const next: JsonObject = {};
      entries.forEach(([ek, ev], j) => {
        if (j === i) next[k] = v;
        else if (ek !== k) next[ek] = ev;
      });
      onChange(next);
    };
    return (
      <div class="form-block" role="group" aria-labelledby={`${id}-label`}>
        <div class="form-block-head">
          <FieldLabel f={f} id={`${id}-label`} group />
          <span class="muted small">{entries.length} entr{entries.length === 1 ? "y" : "ies"}</span>
        </div>
        {help}
        <div class="form-map">
          {entries.map(([k, v], i) => (
            <div class="form-map-row">
              <input
                type="text"
                class="map-key mono"
                aria-label={`${f.jsonName} key ${i + 1}`}
                placeholder={`key (${keyKind})`}
                value={k}
                onChange={(e) => setEntry(i, e.currentTarget.value, v)}
              />
              <div class="form-list-value">
                <ValueEditor ctx={ctx} t={f.type} value={v} onChange={(nv) => setEntry(i, k, nv ?? newElement(ctx.set, f.type))} id={`${id}-v${i}`} path={`${path}[${JSON.stringify(k)}]`} depth={depth + 1} label={`${f.jsonName} value for ${k}`} />
              </div>
              <button
                type="button"
                class="btn btn-ghost btn-icon btn-sm"
                aria-label={`Remove ${f.jsonName} entry ${k}`}
                onClick={() => {
                  const next = { ...obj };
                  delete next[k];
                  onChange(next);
                }}
              >
                <IconTrash />
              </button>
            </div>
          ))}
        </div>
        <button
          type="button"
          id={`${id}-add`}
          class="btn btn-ghost btn-sm add-btn"
          onClick={() => {
            let n = entries.length + 1;
            const base = keyKind === "string" ? "key" : keyKind === "bool" ? "true" : "";
            let key = base ? `${base}${n > 1 ? n : ""}` : String(n);
            while (key in obj) key = base ? `${base}${++n}` : String(++n);
            onChange({ ...obj, [key]: newElement(ctx.set, f.type) });
          }}
        >
          <IconPlus /> <span>Add {f.jsonName} entry</span>
        </button>
      </div>
    );
  }
  if (f.type.kind === "message" || f.type.kind === "any") {
    return (
      <NestedMessage ctx={ctx} f={f} value={value} onChange={onChange} path={path} depth={depth} id={id} help={help} />
    );
  }
  return (
    <div class="form-row">
      <FieldLabel f={f} id={id} />
      <div class="form-control">
        <ValueEditor
          ctx={ctx}
          t={f.type}
          value={value}
          onChange={(v) => onChange(v === undefined && props.inOneof ? newElement(ctx.set, f.type) : v)}
          id={id}
          path={path}
          depth={depth}
          describedBy={help ? `${id}-help` : undefined}
          keepEmptyString={props.inOneof}
        />
        {help}
      </div>
    </div>
  );
}

function NestedMessage(props: { ctx: Ctx; f: FieldInfo; value: Json | undefined; onChange: (v: Json | undefined) => void; path: string; depth: number; id: string; help: ComponentChildren }) {
  const { ctx, f, value, onChange, path, depth, id, help } = props;
  const [open, setOpen] = useState(depth < 2);
  const present = value !== undefined && value !== null;
  if (!present) {
    return (
      <div class="form-block form-block-unset" role="group" aria-labelledby={`${id}-label`}>
        <div class="form-block-head">
          <FieldLabel f={f} id={`${id}-label`} group />
          <button
            type="button"
            id={`${id}-set`}
            class="btn btn-ghost btn-sm"
            data-path={path}
            onClick={() => {
              setOpen(true);
              onChange(f.type.kind === "any" ? { "@type": "" } : f.type.located ? exampleMessage(ctx.set, f.type.located, 1) : {});
            }}
          >
            <IconPlus /> <span>Set {f.jsonName}</span>
          </button>
        </div>
        {help}
      </div>
    );
  }
  return (
    <div class="form-block form-nested" role="group" aria-labelledby={`${id}-label`}>
      <div class="form-block-head">
        <button type="button" class="expander" aria-expanded={open} aria-label={`${open ? "Collapse" : "Expand"} ${f.jsonName}`} onClick={() => setOpen(!open)}>
          <IconChevron class={`icon chevron ${open ? "open" : ""}`} />
        </button>
        <FieldLabel f={f} id={`${id}-label`} group />
        <button type="button" id={`${id}-clear`} class="btn btn-ghost btn-icon btn-sm" aria-label={`Unset ${f.jsonName}`} title={`Unset ${f.jsonName}`} onClick={() => onChange(undefined)}>
          <IconX />
        </button>
      </div>
      {help}
      {open && (
        <div class="form-nested-body">
          <ValueEditor ctx={ctx} t={f.type} value={value} onChange={onChange} id={id} path={path} depth={depth + 1} label={f.jsonName} />
        </div>
      )}
    </div>
  );
}

interface ValueProps {
  ctx: Ctx;
  t: TypeInfo;
  value: Json | undefined;
  onChange: (v: Json | undefined) => void;
  id: string;
  path: string;
  depth: number;
  label?: string;
  describedBy?: string;
  keepEmptyString?: boolean;
}

/** Keeps the text being typed even while it is not a valid value yet ("-", "1e"). */
function useDraft(value: Json | undefined, format: (v: Json | undefined) => string, parse: (s: string) => Json | undefined) {
  const [draft, setDraft] = useState(format(value));
  useEffect(() => {
    const parsed = parse(draft);
    if (JSON.stringify(parsed) !== JSON.stringify(value)) setDraft(format(value));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [JSON.stringify(value)]);
  return [draft, setDraft] as const;
}

function ValueEditor(p: ValueProps) {
  const { ctx, t, value, onChange, id, path, depth } = p;
  const common = { id, "data-path": path, "aria-describedby": p.describedBy, "aria-label": p.label };
  switch (t.kind) {
    case "message":
      if (!t.located) return <JsonValueEditor {...p} />;
      return <MessageFields ctx={ctx} located={t.located} value={isObject(value) ? value : {}} onChange={onChange} path={path} depth={depth} />;
    case "any":
      return <AnyEditor {...p} />;
    case "enum": {
      const values = t.enumValues ?? [];
      const current = typeof value === "number" ? (values.find((v) => v.number === value)?.name ?? String(value)) : typeof value === "string" ? value : "";
      return (
        <select {...common} value={current} onChange={(e) => onChange(e.currentTarget.value === "" ? undefined : e.currentTarget.value)}>
          {!values.some((v) => v.name === current) && <option value="">{current ? current : "(not set)"}</option>}
          {values.map((v) => (
            <option value={v.name}>
              {v.name} ({v.number}){v.deprecated ? " — deprecated" : ""}
            </option>
          ))}
        </select>
      );
    }
    case "bool":
      return (
        <label class="check">
          <input type="checkbox" {...common} checked={value === true} onChange={(e) => onChange(e.currentTarget.checked)} />
          <span>{value === true ? "true" : "false"}</span>
        </label>
      );
    case "int":
    case "float":
    case "int64":
      return <NumberInput {...p} />;
    case "bytes":
      return <BytesInput {...p} />;
    case "timestamp":
      return <TimestampInput {...p} />;
    case "duration":
      return <DurationInput {...p} />;
    case "wrapper":
      return (
        <div class="inline-group">
          <ValueEditor {...p} t={{ kind: p.t.inner ?? "string", protoType: p.t.protoType }} />
          <span class="muted small">empty = null</span>
        </div>
      );
    case "empty":
      return <span class="muted mono">{"{}"}</span>;
    case "null":
      return <span class="muted mono">null</span>;
    case "string":
    case "fieldmask":
      return (
        <input
          type="text"
          {...common}
          spellcheck={false}
          placeholder={t.kind === "fieldmask" ? "paths, e.g. location,days" : ""}
          value={typeof value === "string" ? value : value === undefined ? "" : JSON.stringify(value)}
          onInput={(e) => {
            const s = e.currentTarget.value;
            onChange(s === "" && !p.keepEmptyString ? undefined : s);
          }}
        />
      );
    default:
      return <JsonValueEditor {...p} />;
  }
}

function NumberInput(p: ValueProps) {
  const { t, value, onChange, id, path } = p;
  const is64 = t.kind === "int64";
  const parse = (s: string): Json | undefined => {
    const x = s.trim();
    if (x === "") return undefined;
    if (is64) return x;
    if (t.kind === "float" && (x === "NaN" || x === "Infinity" || x === "-Infinity")) return x;
    const n = Number(x);
    return Number.isFinite(n) ? n : x;
  };
  const format = (v: Json | undefined) => (v === undefined || v === null ? "" : String(v));
  const [draft, setDraft] = useDraft(value, format, parse);
  return (
    <input
      type="text"
      inputMode={t.kind === "float" ? "decimal" : "numeric"}
      id={id}
      data-path={path}
      aria-label={p.label}
      aria-describedby={p.describedBy}
      class="mono"
      spellcheck={false}
      placeholder={is64 ? "64-bit integer, as a string" : t.kind === "int" ? "integer" : "number"}
      value={draft}
      onInput={(e) => {
        const s = e.currentTarget.value;
        setDraft(s);
        onChange(parse(s));
      }}
    />
  );
}

function b64ToText(b64: string): string | null {
  try {
    const bin = atob(b64.replace(/-/g, "+").replace(/_/g, "/"));
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
}

function bytesToB64(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

function BytesInput(p: ValueProps) {
  const { value, onChange, id, path } = p;
  const [mode, setMode] = useState<"base64" | "text">("base64");
  const b64 = typeof value === "string" ? value : "";
  const asText = b64ToText(b64);
  return (
    <div class="bytes-input">
      <div class="inline-group">
        <input
          type="text"
          id={id}
          data-path={path}
          aria-label={p.label}
          aria-describedby={p.describedBy}
          class="mono"
          spellcheck={false}
          placeholder={mode === "base64" ? "base64, e.g. aGVsbG8=" : "text, sent as UTF-8 bytes"}
          value={mode === "base64" ? b64 : (asText ?? "")}
          disabled={mode === "text" && asText === null}
          onInput={(e) => {
            const s = e.currentTarget.value;
            if (mode === "base64") onChange(s === "" ? undefined : s);
            else onChange(s === "" ? undefined : bytesToB64(new TextEncoder().encode(s)));
          }}
        />
        <select aria-label="Bytes input mode" value={mode} onChange={(e) => setMode(e.currentTarget.value as "base64" | "text")} class="select-sm">
          <option value="base64">base64</option>
          <option value="text">text</option>
        </select>
        <label class="btn btn-ghost btn-sm">
          <input
            type="file"
            class="visually-hidden"
            onChange={async (e) => {
              const file = e.currentTarget.files?.[0];
              if (file) onChange(bytesToB64(new Uint8Array(await file.arrayBuffer())));
              e.currentTarget.value = "";
            }}
          />
          <span>From file…</span>
        </label>
      </div>
      {mode === "text" && asText === null && <p class="form-help">These bytes are not UTF-8 text; switch to base64 to edit them.</p>}
    </div>
  );
}

function toLocalInput(iso: string): string {
  // The picker edits UTC (labelled as such): "2026-03-14T09:00:00Z" → "2026-03-14T09:00:00".
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return d.toISOString().slice(0, 19);
}

function TimestampInput(p: ValueProps) {
  const { value, onChange, id, path } = p;
  const iso = typeof value === "string" ? value : "";
  return (
    <div class="inline-group">
      <input
        type="datetime-local"
        step={1}
        id={id}
        data-path={path}
        aria-label={p.label}
        aria-describedby={p.describedBy}
        value={toLocalInput(iso)}
        onInput={(e) => {
          const s = e.currentTarget.value;
          if (!s) return onChange(undefined);
          const full = s.length === 16 ? `${s}:00` : s;
          onChange(`${full}Z`);
        }}
      />
      <span class="muted small">UTC</span>
      <button type="button" class="btn btn-ghost btn-sm" onClick={() => onChange(new Date(Math.floor(Date.now() / 1000) * 1000).toISOString().replace(".000Z", "Z"))}>
        Now
      </button>
    </div>
  );
}

const UNITS: { id: string; label: string; seconds: number }[] = [
  { id: "ms", label: "ms", seconds: 0.001 },
  { id: "s", label: "s", seconds: 1 },
  { id: "m", label: "min", seconds: 60 },
  { id: "h", label: "h", seconds: 3600 },
];

function DurationInput(p: ValueProps) {
  const { value, onChange, id, path } = p;
  const seconds = typeof value === "string" && /^-?\d+(\.\d+)?s$/.test(value) ? Number(value.slice(0, -1)) : null;
  const [unit, setUnit] = useState(() => (seconds !== null && seconds !== 0 && Math.abs(seconds) < 1 ? "ms" : "s"));
  const u = UNITS.find((x) => x.id === unit) ?? UNITS[1];
  const toValue = (n: number) => {
    const s = Math.round(n * u.seconds * 1e9) / 1e9;
    return `${s}s`;
  };
  const parse = (s: string): Json | undefined => {
    const x = s.trim();
    if (x === "") return undefined;
    const n = Number(x);
    return Number.isFinite(n) ? toValue(n) : x;
  };
  const format = (v: Json | undefined) => {
    if (typeof v !== "string") return "";
    if (!/^-?\d+(\.\d+)?s$/.test(v)) return v;
    const n = Number(v.slice(0, -1)) / u.seconds;
    return String(Math.round(n * 1e6) / 1e6);
  };
  const [draft, setDraft] = useDraft(value, format, parse);
  return (
    <div class="inline-group">
      <input
        type="text"
        inputMode="decimal"
        class="mono input-short"
        id={id}
        data-path={path}
        aria-label={p.label}
        aria-describedby={p.describedBy}
        value={draft}
        onInput={(e) => {
          setDraft(e.currentTarget.value);
          onChange(parse(e.currentTarget.value));
        }}
      />
      <select
        aria-label="Duration unit"
        class="select-sm"
        value={unit}
        onChange={(e) => {
          // The number typed stays; the unit chosen says what it means ("300" + ms = "0.3s").
          const next = UNITS.find((x) => x.id === e.currentTarget.value) ?? UNITS[1];
          setUnit(next.id);
          const n = Number(draft.trim());
          if (draft.trim() !== "" && Number.isFinite(n)) onChange(`${Math.round(n * next.seconds * 1e9) / 1e9}s`);
        }}
      >
        {UNITS.map((x) => (
          <option value={x.id}>{x.label}</option>
        ))}
      </select>
      <span class="muted small mono">{typeof value === "string" ? value : ""}</span>
    </div>
  );
}

const ANY_PREFIX = "type.googleapis.com/";

function AnyEditor(p: ValueProps) {
  const { ctx, value, onChange, id, path, depth } = p;
  const obj = isObject(value) ? value : { "@type": "" };
  const typeUrl = typeof obj["@type"] === "string" ? obj["@type"] : "";
  const typeName = typeUrl.slice(typeUrl.lastIndexOf("/") + 1);
  const names = ctx.set.messageNames();
  const located = typeName ? ctx.set.message(typeName) : null;
  const { "@type": _t, ...rest } = obj;
  return (
    <div class="any-editor">
      <div class="form-row">
        <label class="form-label" for={`${id}-type`}>
          <span class="form-name mono">@type</span>
        </label>
        <div class="form-control">
          <div class="inline-group">
            <input
              type="text"
              list={`${id}-types`}
              id={`${id}-type`}
              data-path={`${path}["@type"]`}
              class="mono"
              spellcheck={false}
              placeholder="type.googleapis.com/acme.v1.Thing"
              value={typeUrl}
              onChange={(e) => {
                let url = e.currentTarget.value.trim();
                if (url && !url.includes("/")) url = ANY_PREFIX + url;
                const name = url.slice(url.lastIndexOf("/") + 1);
                const target = ctx.set.message(name);
                const body = target && !target.schema["x-proto-wkt"] ? exampleMessage(ctx.set, target, depth + 1) : {};
                onChange({ "@type": url, ...(name === typeName ? rest : body) });
              }}
            />
            <datalist id={`${id}-types`}>
              {names.map((n) => (
                <option value={ANY_PREFIX + n} />
              ))}
            </datalist>
          </div>
          <p class="form-help">
            Pick one of the {names.length} message types this service knows, or type any fully qualified name.
          </p>
        </div>
      </div>
      {located && !located.schema["x-proto-wkt"] && (
        <MessageFields ctx={ctx} located={located} value={rest} onChange={(v) => onChange({ "@type": typeUrl, ...v })} path={path} depth={depth} />
      )}
      {typeName && !located && <JsonValueEditor {...p} value={rest} onChange={(v) => onChange({ "@type": typeUrl, ...(isObject(v ?? null) ? (v as JsonObject) : {}) })} label="Fields of the packed message (JSON)" />}
    </div>
  );
}

/** For Struct/Value/ListValue and anything the form cannot model: a small JSON box. */
function JsonValueEditor(p: ValueProps) {
  const { value, onChange, id, path } = p;
  const format = (v: Json | undefined) => (v === undefined ? "" : JSON.stringify(v));
  const [draft, setDraft] = useState(format(value));
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    try {
      if (JSON.stringify(draft.trim() ? JSON.parse(draft) : undefined) === JSON.stringify(value)) return;
    } catch {
      // fall through: replace the broken draft with the new value
    }
    setDraft(format(value));
    setError(null);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [JSON.stringify(value)]);
  return (
    <div class="json-value">
      <textarea
        id={id}
        data-path={path}
        aria-label={p.label ?? "JSON value"}
        class="mono"
        rows={2}
        spellcheck={false}
        placeholder="any JSON"
        value={draft}
        onInput={(e) => {
          const s = e.currentTarget.value;
          setDraft(s);
          if (!s.trim()) {
            setError(null);
            return onChange(undefined);
          }
          try {
            onChange(JSON.parse(s) as Json);
            setError(null);
          } catch (err) {
            setError(err instanceof Error ? err.message : "invalid JSON");
          }
        }}
      />
      {error && <p class="form-error">{error}</p>}
    </div>
  );
}
