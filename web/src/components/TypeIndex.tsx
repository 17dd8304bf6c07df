import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { ServiceInfo } from "../gen/catalog/v1/catalog_pb";
import { shortName } from "../lib/format";
import { methodHash, navigate, typeHash } from "../lib/route";
import type { JSONSchema, SchemaSet } from "../schema/types";
import { ensureSchema, useAppState, type SchemaEntry } from "../state/store";
import { SchemaTree } from "./SchemaTree";
import { Paragraphs } from "./ui";

/** The most services whose schemas the index fetches (a big catalog stays bounded). */
export const MAX_INDEXED_SERVICES = 200;
const SHOWN = 200;
const PARALLEL = 4;

interface TypeEntry {
  name: string;
  kind: "message" | "enum";
  doc: string;
  /** Lower-cased field names, enum values and comments, searched after the name. */
  text: string;
  fields: string[];
  service: string;
}

interface UsedBy {
  service: string;
  method: string;
  role: "request" | "response";
}

function describe(node: JSONSchema): string {
  return typeof node.description === "string" ? node.description : "";
}

function entriesOf(set: SchemaSet, service: string, into: Map<string, TypeEntry>): void {
  const add = (name: string, node: JSONSchema) => {
    if (into.has(name) || name.startsWith("google.protobuf.")) return;
    const props = (node.properties ?? {}) as Record<string, JSONSchema>;
    const fields = Object.keys(props);
    const words: string[] = [name, describe(node), ...fields];
    for (const p of Object.values(props)) {
      words.push(describe(p));
      const values = (p.enum ?? (p.items as JSONSchema | undefined)?.enum) as unknown[] | undefined;
      if (Array.isArray(values)) words.push(...values.map(String));
    }
    const values = node.enum as unknown[] | undefined;
    if (Array.isArray(values)) words.push(...values.map(String));
    for (const v of node["x-proto-enum-values"] ?? []) words.push(v.name, v.description ?? "");
    into.set(name, {
      name,
      kind: Array.isArray(values) && !node.properties ? "enum" : "message",
      doc: describe(node),
      text: words.join("\n").toLowerCase(),
      fields,
      service,
    });
  };
  for (const [name, doc] of Object.entries(set.docs)) {
    add(name, doc);
    for (const [def, node] of Object.entries((doc.$defs ?? {}) as Record<string, JSONSchema>)) add(def, node);
  }
}

/** Fetch the schemas of the loaded services (bounded), a few at a time. */
function useAllSchemas(services: ServiceInfo[]): { entries: Record<string, SchemaEntry>; pending: number } {
  const { schemas } = useAppState();
  const wanted = services.slice(0, MAX_INDEXED_SERVICES);
  useEffect(() => {
    let stop = false;
    const queue = wanted.map((s) => s.name).filter((n) => !schemas[n]);
    const worker = async () => {
      while (!stop && queue.length) {
        const name = queue.shift();
        if (name) await ensureSchema(name).catch(() => undefined);
      }
    };
    for (let i = 0; i < PARALLEL; i++) void worker();
    return () => {
      stop = true;
    };
  }, [services]);
  const pending = wanted.filter((s) => !schemas[s.name] || schemas[s.name].status === "loading").length;
  return { entries: schemas, pending };
}

function useIndex(): { types: TypeEntry[]; usedBy: Map<string, UsedBy[]>; pending: number; sets: Map<string, SchemaSet> } {
  const { services } = useAppState();
  const { entries, pending } = useAllSchemas(services);
  return useMemo(() => {
    const map = new Map<string, TypeEntry>();
    const sets = new Map<string, SchemaSet>();
    const usedBy = new Map<string, UsedBy[]>();
    for (const s of services) {
      for (const m of s.methods) {
        for (const [type, role] of [
          [m.inputType, "request"],
          [m.outputType, "response"],
        ] as const) {
          const list = usedBy.get(type) ?? [];
          list.push({ service: s.name, method: m.name, role });
          usedBy.set(type, list);
        }
      }
      const set = entries[s.name]?.set;
      if (set) {
        const before = map.size;
        entriesOf(set, s.name, map);
        if (map.size > before || !sets.size) for (const n of map.keys()) if (!sets.has(n)) sets.set(n, set);
      }
    }
    const types = [...map.values()].sort((a, b) => a.name.localeCompare(b.name));
    return { types, usedBy, pending, sets };
  }, [services, entries, pending]);
}

/** `#/types`: every message and enum type of the loaded services, searchable. */
export function TypeIndex({ query }: { query: string }) {
  const { services } = useAppState();
  const { types, pending } = useIndex();
  const [q, setQ] = useState(query);
  // Follow the route's query only when it changes: the effect of the first render runs
  // after a frame, and must not wipe what the user typed meanwhile.
  const shownQuery = useRef(query);
  useEffect(() => {
    if (shownQuery.current === query) return;
    shownQuery.current = query;
    setQ(query);
  }, [query]);
  const needle = q.trim().toLowerCase();
  const hits = useMemo(() => {
    if (!needle) return types.map((t) => ({ t, where: "" }));
    const out: { t: TypeEntry; where: string }[] = [];
    for (const t of types) {
      if (t.name.toLowerCase().includes(needle)) out.push({ t, where: "" });
      else if (t.text.includes(needle)) {
        const field = t.fields.find((f) => f.toLowerCase().includes(needle));
        out.push({ t, where: field ? `field ${field}` : "values or comments" });
      }
    }
    return out;
  }, [types, needle]);
  const shown = hits.slice(0, SHOWN);
  return (
    <div class="page types">
      <header class="page-head">
        <h1>Types</h1>
        <p class="muted">Every message and enum the loaded services use. Search names, fields, enum values and comments.</p>
      </header>
      <label class="field">
        <span class="field-label">Search types</span>
        <input
          type="search"
          data-testid="type-search"
          value={q}
          spellcheck={false}
          placeholder="e.g. Forecast, stationId, SEVERITY_"
          onInput={(e) => {
            setQ(e.currentTarget.value);
            window.history.replaceState(null, "", `#/types${e.currentTarget.value ? `?q=${encodeURIComponent(e.currentTarget.value)}` : ""}`);
          }}
        />
      </label>
      <p class="muted small" data-testid="type-count" aria-live="polite">
        {needle ? `${hits.length} of ${types.length} types` : `${types.length} types`}
        {pending > 0 && ` · reading ${pending} more service schema${pending === 1 ? "" : "s"}…`}
        {services.length > MAX_INDEXED_SERVICES && ` · the first ${MAX_INDEXED_SERVICES} services are indexed`}
      </p>
      <ul class="type-list">
        {shown.map(({ t, where }) => (
          <li key={t.name}>
            <a href={typeHash(t.name)} class="mono">
              {t.name}
            </a>{" "}
            <span class="badge">{t.kind}</span>
            {where && <span class="muted small"> — matches in {where}</span>}
            {t.doc && <p class="muted small type-doc">{t.doc.split("\n")[0]}</p>}
          </li>
        ))}
      </ul>
      {hits.length > shown.length && <p class="muted small">{hits.length - shown.length} more: narrow the search.</p>}
    </div>
  );
}

/** `#/t/<name>`: one type, where it is used, and its fields. */
export function TypePage({ name }: { name: string }) {
  const { types, usedBy, sets, pending } = useIndex();
  const entry = types.find((t) => t.name === name);
  const set = sets.get(name);
  const uses = usedBy.get(name) ?? [];
  return (
    <div class="page type-page">
      <header class="page-head">
        <p class="muted small">
          <a href="#/types">Types</a> / {name.slice(0, Math.max(0, name.lastIndexOf(".")))}
        </p>
        <h1>{shortName(name)}</h1>
        <p class="mono muted small">{name}</p>
      </header>
      {!entry && <p class="muted">{pending ? "Reading the schemas…" : "No loaded service uses this type."}</p>}
      {entry?.doc && <Paragraphs text={entry.doc} />}
      {uses.length > 0 && (
        <section class="card">
          <h2>Used by</h2>
          <ul class="method-list">
            {uses.map((u) => (
              <li key={`${u.service}/${u.method}/${u.role}`}>
                <a
                  href={methodHash(u.service, u.method)}
                  onClick={(e) => {
                    e.preventDefault();
                    navigate(methodHash(u.service, u.method));
                  }}
                >
                  {shortName(u.service)}.{u.method}
                </a>{" "}
                <span class="muted small">({u.role})</span>
              </li>
            ))}
          </ul>
        </section>
      )}
      {set && entry?.kind === "message" && (
        <section class="card">
          <h2>Fields</h2>
          <SchemaTree set={set} name={name} idPrefix="type" />
        </section>
      )}
    </div>
  );
}
