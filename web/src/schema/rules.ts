// buf.validate value rules (proto3 JSON, as in `x-buf-validate`) read as JSON Schema
// keywords, and a strict check of a string against every string rule the UI knows.
// Map keys and values carry their rules only in `x-buf-validate` (`map.keys`,
// `map.values`): these helpers let the example and the validator treat them like fields.

import { patternRegExp } from "./regexample";
import type { BufRules, JSONSchema } from "./types";

export const NUMBER_RULES = ["int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32", "fixed64", "sfixed32", "sfixed64", "float", "double"];

const STRING_FORMATS: Record<string, string> = {
  email: "email",
  uri: "uri",
  uriRef: "uri-reference",
  uuid: "uuid",
  hostname: "hostname",
  ipv4: "ipv4",
  ipv6: "ipv6",
};

function num(x: unknown): number | undefined {
  const n = typeof x === "string" ? Number(x) : typeof x === "number" ? x : NaN;
  return Number.isFinite(n) ? n : undefined;
}

/** The JSON Schema keywords of one value's rules: the catalog's own mapping (schema.py). */
export function rulesSchema(rules: BufRules | undefined): JSONSchema {
  const out: JSONSchema = {};
  if (!rules) return out;
  const string = rules.string as Record<string, unknown> | undefined;
  if (string && typeof string === "object") {
    if (num(string.minLen) !== undefined) out.minLength = num(string.minLen);
    if (num(string.maxLen) !== undefined) out.maxLength = num(string.maxLen);
    if (num(string.len) !== undefined) out.minLength = out.maxLength = num(string.len);
    if (typeof string.pattern === "string") out.pattern = string.pattern;
    if (typeof string.const === "string") out.const = string.const;
    if (Array.isArray(string.in) && string.in.length) out.enum = [...string.in];
    if (Array.isArray(string.example) && string.example.length) (out as { examples?: unknown[] }).examples = [...string.example];
    for (const [rule, fmt] of Object.entries(STRING_FORMATS)) if (string[rule] === true) out.format = fmt;
    return out;
  }
  for (const kind of NUMBER_RULES) {
    const r = rules[kind] as Record<string, unknown> | undefined;
    if (!r || typeof r !== "object") continue;
    const lo = num(r.gt) ?? num(r.gte);
    const hi = num(r.lt) ?? num(r.lte);
    if (lo !== undefined && hi !== undefined && hi < lo) return out; // an exclusive range: the rules say it
    if (num(r.gt) !== undefined) out.exclusiveMinimum = num(r.gt);
    else if (num(r.gte) !== undefined) out.minimum = num(r.gte);
    if (num(r.lt) !== undefined) out.exclusiveMaximum = num(r.lt);
    else if (num(r.lte) !== undefined) out.maximum = num(r.lte);
    if (num(r.const) !== undefined) out.const = num(r.const);
    if (Array.isArray(r.in) && r.in.length) out.enum = r.in.map(num).filter((x) => x !== undefined);
    const examples = Array.isArray(r.example) ? r.example.map(num).filter((x) => x !== undefined) : [];
    if (examples.length) (out as { examples?: unknown[] }).examples = examples;
    return out;
  }
  return out;
}

function utf8Length(v: string): number {
  return new TextEncoder().encode(v).length;
}

/**
 * Whether a string meets the pattern (confirmed by the browser's RegExp: a pattern it
 * cannot compile confirms nothing), lengths in characters and bytes, prefix, suffix,
 * contains, not_contains, const, in and not_in of `s` and `r` (the field's string rules).
 */
export function stringMeetsRules(v: string, s: JSONSchema, r: Record<string, unknown>, required = false): boolean {
  if (required && v === "") return false;
  const pattern = s.pattern ?? (typeof r.pattern === "string" ? r.pattern : undefined);
  if (pattern !== undefined) {
    const re = patternRegExp(pattern);
    if (!re || !re.test(v)) return false;
  }
  const chars = [...v].length;
  const minLen = Math.max(s.minLength ?? 0, num(r.minLen) ?? 0, num(r.len) ?? 0);
  const maxLen = Math.min(s.maxLength ?? Infinity, num(r.maxLen) ?? Infinity, num(r.len) ?? Infinity);
  if (chars < minLen || chars > maxLen) return false;
  if (r.minBytes !== undefined || r.maxBytes !== undefined || r.lenBytes !== undefined) {
    const bytes = utf8Length(v);
    if (bytes < Math.max(num(r.minBytes) ?? 0, num(r.lenBytes) ?? 0)) return false;
    if (bytes > Math.min(num(r.maxBytes) ?? Infinity, num(r.lenBytes) ?? Infinity)) return false;
  }
  if (typeof r.prefix === "string" && !v.startsWith(r.prefix)) return false;
  if (typeof r.suffix === "string" && !v.endsWith(r.suffix)) return false;
  if (typeof r.contains === "string" && !v.includes(r.contains)) return false;
  if (typeof r.notContains === "string" && r.notContains !== "" && v.includes(r.notContains)) return false;
  if (s.const !== undefined && s.const !== v) return false;
  if (typeof r.const === "string" && r.const !== v) return false;
  if (s.enum?.length && !s.enum.includes(v)) return false;
  if (Array.isArray(r.in) && r.in.length && !r.in.includes(v)) return false;
  if (Array.isArray(r.notIn) && r.notIn.includes(v)) return false;
  return true;
}

/** Whether a number meets gt/gte/lt/lte/const/in/not_in of the number rules `r`. */
export function numberMeetsRules(n: number, r: Record<string, unknown>): boolean {
  const gt = num(r.gt);
  const gte = num(r.gte);
  const lt = num(r.lt);
  const lte = num(r.lte);
  const lo = gt !== undefined ? n > gt : gte !== undefined ? n >= gte : true;
  const hi = lt !== undefined ? n < lt : lte !== undefined ? n <= lte : true;
  const lower = gt ?? gte;
  const upper = lt ?? lte;
  // lo > hi: an exclusive range ("outside upper..lower").
  const inRange = lower !== undefined && upper !== undefined && upper < lower ? lo || hi : lo && hi;
  if (!inRange) return false;
  if (num(r.const) !== undefined && n !== num(r.const)) return false;
  if (Array.isArray(r.in) && r.in.length && !r.in.map(num).includes(n)) return false;
  if (Array.isArray(r.notIn) && r.notIn.map(num).includes(n)) return false;
  return true;
}
