// The JSON Schema documents of GetServiceSchema.message_schemas (draft 2020-12,
// proto3 JSON mapping) and the x-proto-* annotations the catalog adds to them.
//
// One document per message or enum, "$id" = its full name; a field of another type is
// {"$ref": "<full name>"}, resolved through message_schemas. Older catalogs sent
// self-contained documents with "#/$defs/<full name>" references; both are understood.

export interface EnumValueInfo {
  name: string;
  number: number;
  description?: string;
  deprecated?: boolean;
}

export interface JSONSchema {
  $schema?: string;
  $id?: string;
  $ref?: string;
  $defs?: Record<string, JSONSchema>;
  title?: string;
  description?: string;
  deprecated?: boolean;
  type?: string | string[];
  properties?: Record<string, JSONSchema>;
  additionalProperties?: boolean | JSONSchema;
  propertyNames?: JSONSchema;
  required?: string[];
  items?: JSONSchema;
  enum?: unknown[];
  const?: unknown;
  anyOf?: JSONSchema[];
  oneOf?: JSONSchema[];
  allOf?: JSONSchema[];
  not?: JSONSchema;
  pattern?: string;
  format?: string;
  contentEncoding?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  "x-proto-name"?: string;
  "x-proto-type"?: string;
  "x-proto-kind"?: "scalar" | "message" | "enum" | "map";
  "x-proto-label"?: "optional" | "repeated" | "map" | "required";
  "x-proto-number"?: number;
  "x-proto-oneof"?: string;
  "x-proto-map-key"?: string;
  "x-proto-map-value"?: string;
  "x-proto-wkt"?: string;
  "x-proto-enum-values"?: EnumValueInfo[];
  "x-proto-oneofs"?: Record<string, string[]>;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  uniqueItems?: boolean;
  minProperties?: number;
  maxProperties?: number;
  default?: unknown;
  /** "explicit" (has presence: set or not set) or "implicit" (the zero value is not sent). */
  "x-proto-presence"?: "explicit" | "implicit";
  /** "delimited": a proto2 group or an editions DELIMITED message field. */
  "x-proto-encoding"?: "delimited";
  "x-proto-closed-enum"?: boolean;
  /** Set on `[pkg.ext]` properties: the extension's full name. */
  "x-proto-extension"?: string;
  "x-proto-options"?: { name: string; value: unknown }[];
  /** The field's or message's buf.validate rules, as the catalog read them (proto3 JSON). */
  "x-buf-validate"?: BufRules;
  "x-buf-validate-oneofs"?: Record<string, BufRules>;
}

/** buf.validate rules in proto3 JSON, e.g. {"string": {"minLen": "3"}, "required": true}. */
export type BufRules = Record<string, unknown>;

/** The rules of a field or message as lines for people, e.g. "string.min_len = 3". */
export function ruleLines(rules: BufRules | undefined): string[] {
  if (!rules) return [];
  const out: string[] = [];
  const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  const walk = (prefix: string, v: unknown) => {
    if (prefix.endsWith("cel") && Array.isArray(v)) {
      for (const c of v as { id?: string; message?: string; expression?: string }[]) {
        out.push(`CEL ${c.id ?? ""}: ${c.message || c.expression || ""}`.trim());
      }
      return;
    }
    if (v !== null && typeof v === "object" && !Array.isArray(v)) {
      for (const [k, child] of Object.entries(v as Record<string, unknown>)) walk(prefix ? `${prefix}.${snake(k)}` : snake(k), child);
      return;
    }
    // 64-bit numbers arrive as decimal strings: show them as the numbers they are.
    out.push(`${prefix} = ${typeof v === "string" && /^-?\d+$/.test(v) ? v : JSON.stringify(v)}`);
  };
  walk("", rules);
  return out;
}

/** A schema node together with the document its "#" references point into. */
export interface Located {
  schema: JSONSchema;
  root: JSONSchema;
}

/** All message schemas of one service, by fully qualified message name. */
export class SchemaSet {
  readonly docs: Record<string, JSONSchema>;

  constructor(raw: Record<string, string>) {
    this.docs = {};
    for (const [name, text] of Object.entries(raw)) {
      try {
        this.docs[name] = JSON.parse(text) as JSONSchema;
      } catch {
        // A broken document is shown as an unknown type rather than breaking the page.
      }
    }
  }

  message(name: string): Located | null {
    const doc = Object.hasOwn(this.docs, name) ? this.docs[name] : undefined;
    if (doc) return { schema: doc, root: doc };
    for (const root of Object.values(this.docs)) {
      const def = root.$defs?.[name];
      if (def) return { schema: def, root };
    }
    return null;
  }

  /** Follows $ref chains (keeping sibling keywords of the referencing node). */
  resolve(node: JSONSchema, root: JSONSchema): Located {
    let schema = node;
    let doc = root;
    for (let i = 0; i < 32 && schema.$ref !== undefined; i++) {
      const target = this.lookup(schema.$ref, doc);
      if (!target) break;
      const { $ref: _ignored, ...siblings } = schema;
      schema = { ...target.schema, ...pickAnnotations(siblings) };
      doc = target.root;
    }
    return { schema, root: doc };
  }

  lookup(ref: string, root: JSONSchema): Located | null {
    if (ref === "#") return { schema: root, root };
    const prefix = "#/$defs/";
    if (ref.startsWith(prefix)) {
      const name = decodeURIComponent(ref.slice(prefix.length)).replace(/~1/g, "/").replace(/~0/g, "~");
      const local = root.$defs?.[name];
      if (local) return { schema: local, root };
      return this.message(name);
    }
    if (!ref.includes("#") && Object.hasOwn(this.docs, ref)) {
      // A reference to another document of the set, by its "$id" (the full name).
      const doc = this.docs[ref];
      return { schema: doc, root: doc };
    }
    return null;
  }

  /** Every message type the schemas know (for the Any type picker). */
  messageNames(): string[] {
    const names = new Set<string>();
    for (const [name, doc] of Object.entries(this.docs)) {
      if (!doc["x-proto-wkt"] && !doc["x-proto-enum-values"]) names.add(name);
      for (const [def, schema] of Object.entries(doc.$defs ?? {})) {
        if (!schema["x-proto-enum-values"] && !schema["x-proto-wkt"]) names.add(def);
      }
    }
    return [...names].sort();
  }
}

/** The keywords of a referencing node that describe the field, not the type. */
function pickAnnotations(node: JSONSchema): JSONSchema {
  const out: JSONSchema = {};
  for (const [k, v] of Object.entries(node)) {
    if (k.startsWith("x-proto-") || k === "description" || k === "deprecated") {
      (out as Record<string, unknown>)[k] = v;
    }
  }
  return out;
}

export type FieldKind =
  | "message"
  | "enum"
  | "string"
  | "bool"
  | "int"
  | "int64"
  | "float"
  | "bytes"
  | "timestamp"
  | "duration"
  | "any"
  | "struct"
  | "value"
  | "list"
  | "fieldmask"
  | "empty"
  | "wrapper"
  | "null"
  | "unknown";

/** What a UI needs to know about one value type (a field's element type). */
export interface TypeInfo {
  kind: FieldKind;
  /** The proto type: "string", "int64", "weather.v1.Location", "google.protobuf.Timestamp"… */
  protoType: string;
  /** For wrappers: the wrapped scalar's kind. */
  inner?: FieldKind;
  /** For messages and enums: the resolved schema. */
  located?: Located;
  enumValues?: EnumValueInfo[];
}

export interface FieldInfo {
  jsonName: string;
  protoName: string;
  number?: number;
  label: "optional" | "repeated" | "map" | "required";
  oneof?: string;
  description: string;
  deprecated: boolean;
  /** The element type (the value type for maps). */
  type: TypeInfo;
  mapKey?: string;
  /** The field's own schema (array / object for repeated and map). */
  schema: JSONSchema;
}

const SCALAR_KIND: Record<string, FieldKind> = {
  string: "string",
  bool: "bool",
  bytes: "bytes",
  double: "float",
  float: "float",
  int32: "int",
  sint32: "int",
  sfixed32: "int",
  uint32: "int",
  fixed32: "int",
  int64: "int64",
  sint64: "int64",
  sfixed64: "int64",
  uint64: "int64",
  fixed64: "int64",
};

const WKT_KIND: Record<string, FieldKind> = {
  "google.protobuf.Timestamp": "timestamp",
  "google.protobuf.Duration": "duration",
  "google.protobuf.Any": "any",
  "google.protobuf.Struct": "struct",
  "google.protobuf.Value": "value",
  "google.protobuf.ListValue": "list",
  "google.protobuf.FieldMask": "fieldmask",
  "google.protobuf.Empty": "empty",
  "google.protobuf.NullValue": "null",
};

const WRAPPED: Record<string, string> = {
  DoubleValue: "double",
  FloatValue: "float",
  Int64Value: "int64",
  UInt64Value: "uint64",
  Int32Value: "int32",
  UInt32Value: "uint32",
  BoolValue: "bool",
  StringValue: "string",
  BytesValue: "bytes",
};

function typesOf(s: JSONSchema): string[] {
  if (s.type === undefined) return [];
  return Array.isArray(s.type) ? s.type : [s.type];
}

export function wktKind(name: string): { kind: FieldKind; inner?: FieldKind } | null {
  if (WKT_KIND[name]) return { kind: WKT_KIND[name] };
  if (name.startsWith("google.protobuf.")) {
    const wrapped = WRAPPED[name.slice("google.protobuf.".length)];
    if (wrapped) return { kind: "wrapper", inner: SCALAR_KIND[wrapped] };
  }
  return null;
}

/** Describes a value schema (the field itself, an array's items or a map's values). */
export function typeInfo(set: SchemaSet, node: JSONSchema, root: JSONSchema, protoType?: string): TypeInfo {
  const located = set.resolve(node, root);
  const s = located.schema;
  const wkt = s["x-proto-wkt"] ?? (protoType && wktKind(protoType) ? protoType : undefined);
  if (wkt) {
    const k = wktKind(wkt);
    if (k) return { kind: k.kind, inner: k.inner, protoType: wkt };
  }
  if (s["x-proto-enum-values"]) {
    return {
      kind: "enum",
      protoType: protoType ?? s.title ?? "enum",
      located,
      enumValues: s["x-proto-enum-values"],
    };
  }
  if (s.properties !== undefined || s["x-proto-oneofs"] !== undefined) {
    return { kind: "message", protoType: protoType ?? s.title ?? "message", located };
  }
  if (protoType && SCALAR_KIND[protoType]) return { kind: SCALAR_KIND[protoType], protoType };
  const t = typesOf(s);
  if (s.contentEncoding === "base64") return { kind: "bytes", protoType: "bytes" };
  if (t.includes("boolean")) return { kind: "bool", protoType: "bool" };
  if (t.includes("integer") && t.includes("string")) return { kind: "int64", protoType: "int64" };
  if (t.includes("integer")) return { kind: "int", protoType: "int32" };
  if (t.includes("number")) return { kind: "float", protoType: "double" };
  if (t.includes("string")) return { kind: "string", protoType: "string" };
  return { kind: "unknown", protoType: protoType ?? "unknown" };
}

/** The fields of a message schema, in declaration order (by field number). */
export function messageFields(set: SchemaSet, located: Located): FieldInfo[] {
  const { schema, root } = located;
  const out: FieldInfo[] = [];
  for (const [jsonName, raw] of Object.entries(schema.properties ?? {})) {
    const label =
      raw["x-proto-label"] ??
      (raw["x-proto-kind"] === "map"
        ? "map"
        : typesOf(raw).includes("array") && !raw.$ref
          ? "repeated"
          : "optional");
    const protoType = raw["x-proto-type"];
    let type: TypeInfo;
    if (label === "repeated") {
      type = typeInfo(set, raw.items ?? {}, root, protoType);
    } else if (label === "map") {
      const value = typeof raw.additionalProperties === "object" ? raw.additionalProperties : {};
      type = typeInfo(set, value, root, raw["x-proto-map-value"]);
    } else {
      type = typeInfo(set, raw, root, protoType);
    }
    out.push({
      jsonName,
      protoName: raw["x-proto-name"] ?? jsonName,
      number: raw["x-proto-number"],
      label,
      oneof: raw["x-proto-oneof"],
      description: raw.description ?? "",
      deprecated: raw.deprecated === true,
      type,
      mapKey: raw["x-proto-map-key"],
      schema: raw,
    });
  }
  out.sort((a, b) => (a.number ?? 0) - (b.number ?? 0));
  return out;
}

/** Oneof groups of a message: name → member JSON names (proto3 `optional` excluded). */
export function oneofGroups(located: Located): Record<string, string[]> {
  return located.schema["x-proto-oneofs"] ?? {};
}

export function typeLabel(f: FieldInfo): string {
  const t = shortType(f.type);
  if (f.label === "map") return `map<${f.mapKey ?? "string"}, ${t}>`;
  if (f.label === "repeated") return `repeated ${t}`;
  return t;
}

/** Well-known types read better without their package: "Timestamp", "Int32Value". */
export function shortType(t: TypeInfo): string {
  return t.protoType.startsWith("google.protobuf.") ? t.protoType.slice("google.protobuf.".length) : t.protoType;
}

/** How a well-known type looks in JSON, for the schema tree. */
export function jsonFormHint(t: TypeInfo): string | null {
  switch (t.kind) {
    case "timestamp":
      return 'RFC 3339 string, e.g. "2026-03-14T09:00:00Z"';
    case "duration":
      return 'seconds with an "s" suffix, e.g. "1.5s"';
    case "any":
      return 'object with "@type" and the fields of that type';
    case "struct":
      return "any JSON object";
    case "value":
      return "any JSON value";
    case "list":
      return "any JSON array";
    case "fieldmask":
      return 'comma-separated JSON field paths, e.g. "location,days"';
    case "empty":
      return "{}";
    case "wrapper": {
      const inner = t.inner === "int" || t.inner === "float" ? "number" : t.inner === "bool" ? "boolean" : t.inner === "bytes" ? "base64 string" : "string";
      return `${inner} or null`;
    }
    case "int64":
      return "decimal string";
    case "bytes":
      return "base64 string";
    case "null":
      return "null";
    default:
      return null;
  }
}
