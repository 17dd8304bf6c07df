import { messageFields, oneofGroups, type FieldInfo, type Located, type SchemaSet, type TypeInfo } from "./types";

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

const MAX_DEPTH = 4;

/** A valid example request: every field with a simple value, first member of each oneof. */
export function exampleMessage(set: SchemaSet, located: Located, depth = 0, seen: string[] = []): JsonObject {
  const out: JsonObject = {};
  const groups = oneofGroups(located);
  const firstOfGroup = new Set(Object.values(groups).map((m) => m[0]));
  const name = located.schema.title ?? "";
  const chain = [...seen, name];
  for (const f of messageFields(set, located)) {
    if (f.deprecated) continue;
    if (f.oneof && !firstOfGroup.has(f.jsonName)) continue;
    const v = exampleField(set, f, depth, chain);
    if (v !== undefined) out[f.jsonName] = v;
  }
  return out;
}

function exampleField(set: SchemaSet, f: FieldInfo, depth: number, seen: string[]): Json | undefined {
  if (f.label === "repeated") return [];
  if (f.label === "map") return {};
  return commentExample(f) ?? exampleValue(set, f.type, depth, seen);
}

/** The value a field's comment gives as an example (`e.g. "LIS-001"`, `e.g. 38.7`), when it
 * fits the field's type: what the API's authors would type. */
export function commentExample(f: FieldInfo): Json | undefined {
  const m = /\be\.g\.,?\s*(?:"([^"]*)"|'([^']*)'|`([^`]*)`|(-?\d+(?:\.\d+)?)|(true|false)\b)/i.exec(f.description || "");
  if (!m) return undefined;
  const text = m[1] ?? m[2] ?? m[3];
  const kind = f.type.kind;
  if (text !== undefined) {
    if (kind === "string" || kind === "int64") return kind === "int64" && !/^-?\d+$/.test(text) ? undefined : text;
    if (kind === "enum") return (f.type.enumValues ?? []).some((v) => v.name === text) ? text : undefined;
    if ((kind === "int" || kind === "float") && /^-?\d+(\.\d+)?$/.test(text)) return Number(text);
    return undefined;
  }
  if (m[4] !== undefined) {
    if (kind === "int" && /^-?\d+$/.test(m[4])) return Number(m[4]);
    if (kind === "float") return Number(m[4]);
    if (kind === "int64" && /^-?\d+$/.test(m[4])) return m[4];
    if (kind === "string") return m[4];
    return undefined;
  }
  return kind === "bool" ? m[5].toLowerCase() === "true" : undefined;
}

export function exampleValue(set: SchemaSet, t: TypeInfo, depth = 0, seen: string[] = []): Json | undefined {
  switch (t.kind) {
    case "message":
      if (!t.located || depth >= MAX_DEPTH || seen.includes(t.protoType)) return undefined;
      return exampleMessage(set, t.located, depth + 1, seen);
    case "enum": {
      const values = t.enumValues ?? [];
      const pick = values.find((v) => v.number !== 0 && !v.deprecated) ?? values[0];
      return pick ? pick.name : 0;
    }
    case "string":
    case "bytes":
    case "fieldmask":
      return "";
    case "bool":
      return false;
    case "int":
    case "float":
      return 0;
    case "int64":
      return "0";
    case "timestamp":
      return new Date(Math.floor(Date.now() / 1000) * 1000).toISOString().replace(".000Z", "Z");
    case "duration":
      return "1s";
    case "struct":
    case "empty":
      return {};
    case "list":
      return [];
    default:
      return undefined;
  }
}

/** The zero value the form starts a new element with (repeated items, map values). */
export function newElement(set: SchemaSet, t: TypeInfo): Json {
  const v = exampleValue(set, t);
  if (v !== undefined) return v;
  if (t.kind === "any") return { "@type": "" };
  if (t.kind === "wrapper") return t.inner === "bool" ? false : t.inner === "string" || t.inner === "bytes" || t.inner === "int64" ? "" : 0;
  return null;
}
