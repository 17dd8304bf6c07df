import { useState } from "preact/hooks";
import { jsonFormHint, messageFields, oneofGroups, ruleLines, typeLabel, type FieldInfo, type Located, type SchemaSet, type TypeInfo } from "../schema/types";
import { IconChevron } from "./icons";

/** Request/response message as an expandable tree of fields. */
export function SchemaTree({ set, name, idPrefix }: { set: SchemaSet; name: string; idPrefix: string }) {
  const located = set.message(name);
  if (!located) return <p class="muted">No schema for {name}.</p>;
  if (located.schema["x-proto-wkt"]) {
    return (
      <p class="muted">
        Well-known type <code>{name}</code>
        {hintFor(located.schema["x-proto-wkt"]) ? ` — ${hintFor(located.schema["x-proto-wkt"])}` : ""}.
      </p>
    );
  }
  return (
    <div class="schema-tree" role="group" aria-label={`Fields of ${name}`}>
      <MessageFields set={set} located={located} path={idPrefix} depth={0} />
    </div>
  );
}

function hintFor(wkt: string): string | null {
  const kinds: Record<string, TypeInfo["kind"]> = {
    "google.protobuf.Empty": "empty",
    "google.protobuf.Timestamp": "timestamp",
    "google.protobuf.Duration": "duration",
    "google.protobuf.Struct": "struct",
    "google.protobuf.Any": "any",
  };
  return kinds[wkt] ? jsonFormHint({ kind: kinds[wkt], protoType: wkt }) : null;
}

function MessageFields({ set, located, path, depth }: { set: SchemaSet; located: Located; path: string; depth: number }) {
  const fields = messageFields(set, located);
  const groups = oneofGroups(located);
  if (!fields.length) return <p class="tree-empty muted small">No fields.</p>;
  const seenGroups = new Set<string>();
  const items = [];
  for (const f of fields) {
    if (f.oneof && groups[f.oneof]) {
      if (seenGroups.has(f.oneof)) continue;
      seenGroups.add(f.oneof);
      const members = fields.filter((x) => x.oneof === f.oneof);
      items.push(
        <div class="oneof-group" role="group" aria-label={`oneof ${f.oneof}`}>
          <div class="oneof-label">
            <span class="badge badge-oneof">oneof</span> <span class="mono">{f.oneof}</span>{" "}
            <span class="muted small">— set at most one of these</span>
          </div>
          {members.map((m) => (
            <FieldRow set={set} f={m} path={`${path}.${m.jsonName}`} depth={depth} />
          ))}
        </div>,
      );
    } else {
      items.push(<FieldRow set={set} f={f} path={`${path}.${f.jsonName}`} depth={depth} />);
    }
  }
  return <div class="fields">{items}</div>;
}

/** Default, buf.validate rules and options of a field, when it has any. */
function FieldFacts({ f }: { f: FieldInfo }) {
  const rules = ruleLines(f.schema["x-buf-validate"]);
  const options = (f.schema["x-proto-options"] ?? []).map((o) => `${o.name} = ${JSON.stringify(o.value)}`);
  if (f.schema.default === undefined && !rules.length && !options.length) return null;
  return (
    <div class="field-facts small">
      {f.schema.default !== undefined && (
        <span class="field-default">
          default <code>{JSON.stringify(f.schema.default)}</code>
        </span>
      )}
      {rules.length > 0 && (
        <span class="field-rules" data-testid="field-rules" title="buf.validate rules: the form checks them before sending">
          rules: {rules.map((r) => <code key={r}>{r}</code>)}
        </span>
      )}
      {options.length > 0 && <span class="field-options">options: {options.map((o) => <code key={o}>{o}</code>)}</span>}
    </div>
  );
}

function FieldRow({ set, f, path, depth }: { set: SchemaSet; f: FieldInfo; path: string; depth: number }) {
  const t = f.type;
  const expandable = (t.kind === "message" && !!t.located) || (t.kind === "enum" && !!t.enumValues?.length);
  const [open, setOpen] = useState(false);
  const hint = jsonFormHint(t);
  const id = `f-${path.replace(/[^A-Za-z0-9_-]/g, "-")}`;
  return (
    <div class={`field-node ${f.deprecated ? "is-deprecated" : ""}`}>
      <div class="field-line">
        {expandable ? (
          <button type="button" class="expander" aria-expanded={open} aria-controls={id} aria-label={`${open ? "Collapse" : "Expand"} ${f.jsonName}`} onClick={() => setOpen(!open)}>
            <IconChevron class={`icon chevron ${open ? "open" : ""}`} />
          </button>
        ) : (
          <span class="expander-spacer" />
        )}
        <span class="field-name mono">{f.jsonName}</span>
        {f.protoName !== f.jsonName && <span class="proto-name mono muted" title="Name in the .proto file">{f.protoName}</span>}
        <span class={`field-type mono type-${t.kind}`} title={t.protoType}>
          {typeLabel(f)}
        </span>
        {(f.label === "required" || f.schema["x-buf-validate"]?.required === true) && <span class="badge badge-warn">required</span>}
        {f.deprecated && <span class="badge badge-warn">deprecated</span>}
        {f.schema["x-proto-extension"] && <span class="badge" title={`Extension ${f.schema["x-proto-extension"]}`}>extension</span>}
        {f.schema["x-proto-encoding"] === "delimited" && <span class="badge" title="Encoded as a group (delimited)">group</span>}
        {f.schema["x-proto-presence"] === "explicit" && f.type.kind !== "message" && (
          <span class="badge badge-muted" title="Has presence: an unset field differs from its zero value">optional</span>
        )}
        {f.number !== undefined && <span class="field-number mono muted" title="Field number">= {f.number}</span>}
      </div>
      {(f.description || hint) && (
        <div class="field-desc">
          {f.description && <span>{f.description}</span>}
          {hint && <span class="json-hint">JSON: {hint}</span>}
        </div>
      )}
      <FieldFacts f={f} />
      {open && expandable && (
        <div class="field-children" id={id}>
          {t.kind === "message" && t.located && depth < 24 && <MessageFields set={set} located={t.located} path={path} depth={depth + 1} />}
          {t.kind === "enum" && t.enumValues && (
            <ul class="enum-values">
              {t.enumValues.map((v) => (
                <li class={v.deprecated ? "is-deprecated" : ""}>
                  <span class="mono">{v.name}</span> <span class="muted mono">= {v.number}</span>
                  {v.description && <span class="enum-desc"> — {v.description}</span>}
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
    </div>
  );
}
