import { regexExample } from "./regexample";
import { NUMBER_RULES, numberMeetsRules, rulesSchema, stringMeetsRules } from "./rules";
import { messageFields, oneofGroups, type BufRules, type FieldInfo, type JSONSchema, type Located, type SchemaSet, type TypeInfo } from "./types";

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

/** The most elements a `repeated.min_items` rule makes the example hold. */
const MAX_EXAMPLE_ITEMS = 8;

function exampleField(set: SchemaSet, f: FieldInfo, depth: number, seen: string[]): Json | undefined {
  const rules = f.schema["x-buf-validate"];
  if (f.label === "repeated") {
    const n = Math.min(f.schema.minItems ?? 0, MAX_EXAMPLE_ITEMS);
    if (!n) return [];
    const itemRules = (rules?.repeated as BufRules | undefined)?.items as BufRules | undefined;
    const items = f.schema.items ?? {};
    const first = commentExample(f) ?? exampleValue(set, f.type, depth, seen);
    const one = fitRules(first, f.type, items, itemRules);
    if (one === undefined) return [];
    const pattern = f.type.kind === "string" && typeof one === "string" ? patternOf(items, itemRules) : undefined;
    return Array.from({ length: n }, (_, i) => {
      if (!f.schema.uniqueItems || !i) return one;
      if (pattern === undefined) return varied(one, i);
      return patternString(first as string, items, stringRules(itemRules), itemRules?.required === true, pattern, i) ?? varied(one, i);
    });
  }
  if (f.label === "map") return exampleMap(set, f, depth, seen);
  return fitRules(commentExample(f) ?? exampleValue(set, f.type, depth, seen), f.type, f.schema, rules);
}

function stringRules(rules: BufRules | undefined): Record<string, unknown> {
  const r = rules?.string;
  return r && typeof r === "object" ? (r as Record<string, unknown>) : {};
}

function patternOf(s: JSONSchema, rules: BufRules | undefined): string | undefined {
  const r = stringRules(rules);
  return s.pattern ?? (typeof r.pattern === "string" ? r.pattern : undefined);
}

/** The most candidates tried for the distinct keys of a map. */
const MAX_KEY_TRIES = 64;

/**
 * A map with as many entries as `map.min_pairs` asks (bounded): distinct keys that meet
 * the `map.keys` rules, values that meet the `map.values` rules. Empty when none are
 * asked for, or when that many keys cannot be found.
 */
function exampleMap(set: SchemaSet, f: FieldInfo, depth: number, seen: string[]): JsonObject {
  const mapRules = (f.schema["x-buf-validate"]?.map ?? {}) as Record<string, unknown>;
  const want = Math.min(f.schema.minProperties ?? Number(mapRules.minPairs ?? 0), MAX_EXAMPLE_ITEMS);
  if (!(want > 0)) return {};
  const keyRules = (mapRules.keys ?? undefined) as BufRules | undefined;
  const valueRules = (mapRules.values ?? undefined) as BufRules | undefined;
  const keys = mapKeys(f.mapKey ?? "string", keyRules, want);
  if (keys.length < want) return {};
  const base = typeof f.schema.additionalProperties === "object" ? f.schema.additionalProperties : {};
  const valueSchema = { ...base, ...rulesSchema(valueRules) };
  const value = fitRules(exampleValue(set, f.type, depth, seen), f.type, valueSchema, valueRules);
  if (value === undefined) return {};
  const out: JsonObject = {};
  for (const k of keys) out[k] = value;
  return out;
}

const INT_KEYS = ["int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32", "fixed64", "sfixed32", "sfixed64"];

/** `want` distinct map keys (as JSON object keys) that meet the key rules; fewer when they cannot be found. */
function mapKeys(keyType: string, rules: BufRules | undefined, want: number): string[] {
  const out: string[] = [];
  const add = (k: string) => {
    if (!out.includes(k)) out.push(k);
  };
  if (keyType === "bool") {
    const r = (rules?.bool ?? {}) as Record<string, unknown>;
    for (const k of ["true", "false"]) if (r.const === undefined || String(r.const) === k) add(k);
    return out.slice(0, want);
  }
  if (INT_KEYS.includes(keyType)) {
    const kind = Object.keys(rules ?? {}).find((k) => INT_KEYS.includes(k));
    const r = (kind ? rules?.[kind] : {}) as Record<string, unknown>;
    const schema = rulesSchema(rules);
    const unsigned = keyType.startsWith("uint") || keyType.startsWith("fixed");
    const candidates: number[] = Array.isArray(r.in) && r.in.length ? r.in.map(Number) : [];
    if (!candidates.length) {
      const start = Number(fitNumber(0, "int", schema, r, false));
      for (let i = 0; i < MAX_KEY_TRIES; i++) candidates.push(start + i);
    }
    for (const n of candidates) {
      if (out.length >= want) break;
      if (Number.isSafeInteger(n) && (!unsigned || n >= 0) && numberMeetsRules(n, r)) add(String(n));
    }
    return out;
  }
  // String keys.
  const r = stringRules(rules);
  const schema = rulesSchema(rules);
  const pattern = patternOf(schema, rules);
  if (Array.isArray(r.in) && r.in.length) {
    for (const k of r.in) if (typeof k === "string" && stringMeetsRules(k, schema, r)) add(k);
    return out.slice(0, want);
  }
  const first = fitRules("key", { kind: "string", protoType: "string" }, schema, rules);
  for (let i = 0; i < MAX_KEY_TRIES && out.length < want; i++) {
    let k: string | null = null;
    if (pattern !== undefined) k = patternString("key", schema, r, false, pattern, i);
    else if (typeof first === "string") k = i ? `${first}${i}` : first;
    if (k !== null && stringMeetsRules(k, schema, r)) add(k);
  }
  return out;
}

/** A different value of the same kind (unique repeated items). */
function varied(v: Json, i: number): Json {
  if (typeof v === "string") return /^-?\d+$/.test(v) ? String(BigInt(v) + BigInt(i)) : `${v}${i}`;
  if (typeof v === "number") return v + i;
  return v;
}

const FORMAT_EXAMPLES: Record<string, string> = {
  email: "user@example.com",
  uri: "https://example.com/",
  "uri-reference": "/path",
  uuid: "8f2b6a4e-5c1d-4e3a-9b7f-0a1b2c3d4e5f",
  hostname: "example.com",
  ipv4: "192.0.2.1",
  ipv6: "2001:db8::1",
};

/**
 * Make an example value meet the field's rules: the JSON Schema keywords the catalog
 * derives from buf.validate (const, examples, enum, minLength/maxLength, format,
 * minimum/maximum and their exclusive forms) and the buf.validate rules that have no
 * keyword (string prefix/suffix/contains, required, enum in/not_in/defined_only, bytes
 * lengths). A string `pattern` is solved (`patternString`): the buf.validate example, the
 * comment's example or a string made from the pattern, whichever first meets every rule.
 */
export function fitRules(v: Json | undefined, t: TypeInfo, s: JSONSchema, rules: BufRules | undefined): Json | undefined {
  if (v === undefined) return v;
  if (s.const !== undefined) return s.const as Json;
  const examples = (s as { examples?: Json[] }).examples;
  const pattern = t.kind === "string" && typeof v === "string" && !s.enum?.length ? patternOf(s, rules) : undefined;
  if (pattern !== undefined) {
    const solved = patternString(v as string, s, stringRules(rules), rules?.required === true, pattern, 0);
    if (solved !== null) return solved;
  }
  if (Array.isArray(examples) && examples.length) return t.kind === "int64" ? String(examples[0]) : examples[0];
  const required = rules?.required === true;
  switch (t.kind) {
    case "string":
      return typeof v === "string" ? fitString(v, s, (rules?.string ?? {}) as Record<string, unknown>, required) : v;
    case "int":
    case "float":
    case "int64": {
      const kind = NUMBER_RULES.find((k) => rules && typeof rules[k] === "object");
      return fitNumber(v, t.kind, s, (kind ? rules?.[kind] : {}) as Record<string, unknown>, required);
    }
    case "enum":
      return fitEnum(v, t, (rules?.enum ?? {}) as Record<string, unknown>);
    case "bytes": {
      const b = (rules?.bytes ?? {}) as Record<string, unknown>;
      const n = Number(b.len ?? b.minLen ?? (required ? 1 : 0));
      return n > 0 && n <= 1024 ? btoa("\0".repeat(n)) : v;
    }
    default:
      return v;
  }
}

function fitString(v: string, s: JSONSchema, r: Record<string, unknown>, required: boolean): string {
  if (s.enum?.length) return String(s.enum[0]);
  if (s.format && FORMAT_EXAMPLES[s.format] && (v === "" || !FORMAT_CHECK[s.format]?.(v))) v = FORMAT_EXAMPLES[s.format];
  const ruleFormat = Object.keys(RULE_FORMATS).find((k) => r[k] === true);
  if (ruleFormat && !s.format) v = RULE_FORMATS[ruleFormat];
  const prefix = typeof r.prefix === "string" ? r.prefix : "";
  const suffix = typeof r.suffix === "string" ? r.suffix : "";
  const contains = typeof r.contains === "string" ? r.contains : "";
  let body = v;
  if (prefix && body.startsWith(prefix)) body = body.slice(prefix.length);
  if (suffix && body.endsWith(suffix)) body = body.slice(0, body.length - suffix.length);
  if (contains && !(prefix + body + suffix).includes(contains)) body += contains;
  if (required && !prefix && !suffix && !body) body = "example";
  const min = s.minLength ?? 0;
  const fixed = prefix.length + suffix.length;
  const have = [...body].length + fixed;
  if (have < min) body += "x".repeat(min - have);
  const max = s.maxLength;
  if (max !== undefined && [...body].length + fixed > max) body = [...body].slice(0, Math.max(0, max - fixed)).join("");
  return prefix + body + suffix;
}

/**
 * A string that matches `pattern` and meets the other string rules, each candidate
 * confirmed with the browser's RegExp: in order the buf.validate `example`, the value
 * given (the comment's example), that value fitted to the other rules, then one made
 * from the pattern (as is, then fitted). Variant `n` > 0 asks for the nth distinct one
 * made from the pattern (unique items, map keys). Null when none is confirmed.
 */
export function patternString(v: string, s: JSONSchema, r: Record<string, unknown>, required: boolean, pattern: string, variant: number): string | null {
  const formatOk = s.format ? FORMAT_CHECK[s.format] : undefined;
  const ok = (c: unknown): c is string => typeof c === "string" && stringMeetsRules(c, s, r, required) && (!formatOk || formatOk(c));
  if (variant === 0) {
    const examples = (s as { examples?: Json[] }).examples;
    if (Array.isArray(examples) && ok(examples[0])) return examples[0];
    if (Array.isArray(r.example) && ok(r.example[0])) return r.example[0];
    if (v !== "") {
      if (ok(v)) return v;
      const fitted = fitString(v, s, r, required);
      if (ok(fitted)) return fitted;
    }
    // A well-known format and a pattern: the format's example, when the pattern takes it.
    const ruleFormat = Object.keys(RULE_FORMATS).find((k) => r[k] === true);
    const formatted = (s.format && FORMAT_EXAMPLES[s.format]) || (ruleFormat && RULE_FORMATS[ruleFormat]);
    if (formatted && ok(formatted)) return formatted;
  }
  const minLen = Math.max(s.minLength ?? 0, num(r.minLen) ?? 0, num(r.len) ?? 0, num(r.minBytes) ?? 0, required ? 1 : 0);
  const maxLen = Math.min(s.maxLength ?? Infinity, num(r.maxLen) ?? Infinity, num(r.len) ?? Infinity, num(r.maxBytes) ?? Infinity);
  const made = regexExample(pattern, { minLen, maxLen: Number.isFinite(maxLen) ? maxLen : undefined, variant });
  if (made === null) return null;
  if (ok(made)) return made;
  const fitted = fitString(made, s, r, required);
  return ok(fitted) ? fitted : null;
}

/** String rules with no JSON Schema format: a value that passes each. */
const RULE_FORMATS: Record<string, string> = {
  ip: "192.0.2.1",
  address: "example.com",
  tuuid: "8f2b6a4e5c1d4e3a9b7f0a1b2c3d4e5f",
  hostAndPort: "example.com:443",
  ipWithPrefixlen: "192.0.2.1/24",
  ipv4WithPrefixlen: "192.0.2.1/24",
  ipv6WithPrefixlen: "2001:db8::1/64",
  ipPrefix: "192.0.2.0/24",
  ipv4Prefix: "192.0.2.0/24",
  ipv6Prefix: "2001:db8::/32",
};

const FORMAT_CHECK: Record<string, (v: string) => boolean> = {
  email: (v) => /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(v),
  uri: (v) => /^[a-z][a-z0-9+.-]*:/i.test(v),
  uuid: (v) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v),
  hostname: (v) => /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i.test(v),
  ipv4: (v) => /^(\d{1,3}\.){3}\d{1,3}$/.test(v),
  ipv6: (v) => v.includes(":"),
};

function num(x: unknown): number | undefined {
  const n = typeof x === "string" ? Number(x) : typeof x === "number" ? x : NaN;
  return Number.isFinite(n) ? n : undefined;
}

function fitNumber(v: Json, kind: "int" | "float" | "int64", s: JSONSchema, r: Record<string, unknown>, required: boolean): Json {
  const out = (n: number): Json => (kind === "int64" ? String(n) : n);
  if (s.enum?.length) return out(Number(s.enum[0]));
  const int = kind !== "float";
  const gt = num(r.gt) ?? s.exclusiveMinimum;
  const gte = num(r.gte) ?? s.minimum;
  const lt = num(r.lt) ?? s.exclusiveMaximum;
  const lte = num(r.lte) ?? s.maximum;
  let lo = gte ?? (gt !== undefined ? (int ? Math.floor(gt) + 1 : gt) : undefined);
  let hi = lte ?? (lt !== undefined ? (int ? Math.ceil(lt) - 1 : lt) : undefined);
  let n = num(v) ?? 0;
  if (required && n === 0) n = 1;
  if (lo !== undefined && hi !== undefined && hi < lo) {
    // An exclusive range ("outside hi..lo"): just past its lower end.
    n = lo;
  } else {
    if (!int && gt !== undefined && hi !== undefined && lt !== undefined) {
      lo = hi = (gt + lt) / 2; // a float strictly between
    }
    if (lo !== undefined && n < lo) n = !int && gt !== undefined && gte === undefined ? (hi !== undefined ? (gt + hi) / 2 : gt + 1) : lo;
    if (hi !== undefined && n > hi) n = !int && lt !== undefined && lte === undefined ? (lo !== undefined ? (lo + lt) / 2 : lt - 1) : hi;
  }
  const notIn = Array.isArray(r.notIn) ? r.notIn.map(num) : [];
  for (let i = 0; i < 64 && notIn.includes(n); i++) n += 1;
  return out(n);
}

function fitEnum(v: Json, t: TypeInfo, r: Record<string, unknown>): Json {
  const values = t.enumValues ?? [];
  const inList = Array.isArray(r.in) ? r.in.map(Number) : null;
  const notIn = Array.isArray(r.notIn) ? r.notIn.map(Number) : [];
  const constValue = num(r.const);
  const ok = (n: number) => (constValue === undefined || n === constValue) && (!inList || inList.includes(n)) && !notIn.includes(n);
  const current = values.find((x) => x.name === v || x.number === v);
  if (current && ok(current.number)) return current.name;
  const pick = values.find((x) => x.number !== 0 && !x.deprecated && ok(x.number)) ?? values.find((x) => ok(x.number));
  return pick ? pick.name : v;
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
