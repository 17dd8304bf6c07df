import type { Json } from "./example";
import { patternRegExp } from "./regexample";
import { rulesSchema } from "./rules";
import { ruleLines, type BufRules, type JSONSchema, type SchemaSet } from "./types";

export interface ValidationError {
  /** JSON path of the offending value, e.g. "$.location.coordinates.latitude". */
  path: string;
  message: string;
  /** Set when a buf.validate rule of the schema failed (the server would refuse it). */
  rule?: boolean;
}

/** Whether requests that break buf.validate rules are sent anyway (the form's switch). */
export const rulePolicy = { sendAnyway: false };

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

export function childPath(path: string, key: string | number): string {
  if (typeof key === "number") return `${path}[${key}]`;
  return IDENT.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

function jsonType(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;
}

function typeMatches(v: unknown, t: string): boolean {
  const actual = jsonType(v);
  if (t === "number") return actual === "number" || actual === "integer";
  return actual === t;
}

function describe(v: unknown): string {
  const t = jsonType(v);
  if (t === "string") return `the string ${JSON.stringify(v)}`;
  if (t === "integer" || t === "number") return `the number ${String(v)}`;
  if (t === "boolean") return String(v);
  return t === "null" ? "null" : `an ${t}`;
}

const FORMATS: Record<string, RegExp> = {
  email: /^[^@\s]+@[^@\s]+\.[^@\s]+$/,
  uuid: /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/,
  ipv4: /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/,
  hostname: /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/,
  uri: /^[A-Za-z][A-Za-z0-9+.-]*:\S*$/,
};

/** buf.validate rules with no JSON Schema keyword: prefix, suffix, contains, not_in. */
function ruleOnlyChecks(v: unknown, rules: BufRules, path: string, errors: ValidationError[]): void {
  const str = rules.string as Record<string, unknown> | undefined;
  if (typeof v === "string" && str) {
    if (typeof str.prefix === "string" && !v.startsWith(str.prefix)) errors.push({ path, message: `must start with "${str.prefix}"` });
    if (typeof str.suffix === "string" && !v.endsWith(str.suffix)) errors.push({ path, message: `must end with "${str.suffix}"` });
    if (typeof str.contains === "string" && !v.includes(str.contains)) errors.push({ path, message: `must contain "${str.contains}"` });
    if (typeof str.notContains === "string" && v.includes(str.notContains)) errors.push({ path, message: `must not contain "${str.notContains}"` });
    if (Array.isArray(str.notIn) && str.notIn.includes(v)) errors.push({ path, message: `must not be ${JSON.stringify(v)}` });
  }
  if (typeof v === "number") {
    for (const r of Object.values(rules)) {
      const notIn = (r as Record<string, unknown> | null)?.notIn;
      if (Array.isArray(notIn) && notIn.map(Number).includes(v)) errors.push({ path, message: `must not be ${v}` });
    }
  }
}

const cache = new WeakMap<object, RegExp>();
function regex(schema: JSONSchema): RegExp | null {
  if (!schema.pattern) return null;
  let re = cache.get(schema);
  if (!re) {
    // The browser's RegExp; an RE2 leading (?i) or \A, \z are read as JavaScript says them.
    const compiled = patternRegExp(schema.pattern);
    if (!compiled) return null;
    re = compiled;
    cache.set(schema, re);
  }
  return re;
}

/**
 * Validates a JSON value against a message schema. Returns the errors found,
 * deepest first within a branch; an empty list means valid. Knows the keywords
 * the catalog emits (type, enum, const, properties, additionalProperties,
 * propertyNames, required, items, anyOf, oneOf, allOf, not, pattern, minimum,
 * maximum, length and item bounds, $ref) plus the x-proto-oneofs annotation,
 * which gives a clearer message than the equivalent allOf/oneOf constraint.
 */
export function validate(set: SchemaSet, value: Json, schema: JSONSchema, root: JSONSchema = schema): ValidationError[] {
  const errors: ValidationError[] = [];
  check(set, value, schema, root, "$", errors, 0);
  return errors;
}

function check(
  set: SchemaSet,
  v: unknown,
  s: JSONSchema,
  root: JSONSchema,
  path: string,
  errors: ValidationError[],
  depth: number,
): void {
  if (depth > 64) return;
  if (s.$ref !== undefined) {
    const target = set.lookup(s.$ref, root);
    if (target) check(set, v, target.schema, target.root, path, errors, depth + 1);
  }
  const types = s.type === undefined ? [] : Array.isArray(s.type) ? s.type : [s.type];
  if (types.length && !types.some((t) => typeMatches(v, t))) {
    errors.push({ path, message: `expected ${expectation(s, types)}, got ${describe(v)}` });
    return;
  }
  const first = errors.length;
  if (s.const !== undefined && JSON.stringify(s.const) !== JSON.stringify(v)) {
    errors.push({ path, message: `must be ${JSON.stringify(s.const)}` });
  }
  if (s.enum && !s.enum.some((e) => JSON.stringify(e) === JSON.stringify(v))) {
    errors.push({ path, message: `must be one of ${s.enum.map((e) => JSON.stringify(e)).join(", ")}` });
  }
  if (typeof v === "string") {
    const re = regex(s);
    if (re && !re.test(v)) errors.push({ path, message: patternMessage(s, v) });
    if (s.minLength !== undefined && [...v].length < s.minLength) errors.push({ path, message: `must have at least ${s.minLength} characters` });
    if (s.maxLength !== undefined && [...v].length > s.maxLength) errors.push({ path, message: `must have at most ${s.maxLength} characters` });
  }
  if (typeof v === "number") {
    if (s.minimum !== undefined && v < s.minimum) errors.push({ path, message: `must be ≥ ${s.minimum}` });
    if (s.maximum !== undefined && v > s.maximum) errors.push({ path, message: `must be ≤ ${s.maximum}` });
    if (s.exclusiveMinimum !== undefined && v <= s.exclusiveMinimum) errors.push({ path, message: `must be > ${s.exclusiveMinimum}` });
    if (s.exclusiveMaximum !== undefined && v >= s.exclusiveMaximum) errors.push({ path, message: `must be < ${s.exclusiveMaximum}` });
  }
  if (typeof v === "string" && s.format && FORMATS[s.format] && !FORMATS[s.format].test(v)) {
    errors.push({ path, message: `"${v}" is not a valid ${s.format}` });
  }
  if (Array.isArray(v)) {
    if (s.minItems !== undefined && v.length < s.minItems) errors.push({ path, message: `needs at least ${s.minItems} items` });
    if (s.maxItems !== undefined && v.length > s.maxItems) errors.push({ path, message: `allows at most ${s.maxItems} items` });
    if (s.uniqueItems && new Set(v.map((x) => JSON.stringify(x))).size !== v.length) errors.push({ path, message: "items must be unique" });
  }
  if (v !== null && typeof v === "object" && !Array.isArray(v)) {
    const n = Object.keys(v).length;
    if (s.minProperties !== undefined && n < s.minProperties) errors.push({ path, message: `needs at least ${s.minProperties} entries` });
    if (s.maxProperties !== undefined && n > s.maxProperties) errors.push({ path, message: `allows at most ${s.maxProperties} entries` });
  }
  const rules = s["x-buf-validate"];
  if (rules) {
    ruleOnlyChecks(v, rules, path, errors);
    for (let i = first; i < errors.length; i++) {
      errors[i] = { ...errors[i], rule: true, message: `${errors[i].message} (buf.validate: ${ruleLines(rules).join(", ")})` };
    }
    const mapRules = rules.map as BufRules | undefined;
    if (mapRules && v !== null && typeof v === "object" && !Array.isArray(v)) checkMapRules(set, v as Record<string, unknown>, s, mapRules, root, path, errors, depth);
  }
  if (Array.isArray(v) && s.items) {
    v.forEach((item, i) => check(set, item, s.items!, root, childPath(path, i), errors, depth + 1));
  }
  if (v !== null && typeof v === "object" && !Array.isArray(v)) {
    const obj = v as Record<string, unknown>;
    for (const key of s.required ?? []) {
      if (key in obj) continue;
      const rule = s.properties?.[key]?.["x-buf-validate"]?.required === true;
      errors.push({ path, message: `missing required field "${key}"${rule ? " (buf.validate: required)" : ""}`, rule: rule || undefined });
    }
    const groups = s["x-proto-oneofs"];
    let oneofReported = false;
    if (groups) {
      for (const [group, members] of Object.entries(groups)) {
        const set_ = members.filter((m) => m in obj && obj[m] !== null);
        if (set_.length > 1) {
          oneofReported = true;
          errors.push({ path, message: `only one of ${members.join(", ")} may be set (oneof ${group}); found ${set_.join(" and ")}` });
        }
      }
    }
    const props = s.properties ?? {};
    for (const [key, child] of Object.entries(obj)) {
      const p = childPath(path, key);
      if (s.propertyNames) {
        const keyErrors: ValidationError[] = [];
        check(set, key, s.propertyNames, root, p, keyErrors, depth + 1);
        if (keyErrors.length) errors.push({ path: p, message: `invalid key ${JSON.stringify(key)}: ${keyErrors[0].message}` });
      }
      if (key in props) {
        check(set, child, props[key], root, p, errors, depth + 1);
      } else if (s.additionalProperties === false) {
        const known = Object.keys(props);
        const hint = suggest(key, known);
        errors.push({ path: p, message: `unknown field "${key}"${hint ? ` — did you mean "${hint}"?` : ""}` });
      } else if (typeof s.additionalProperties === "object") {
        check(set, child, s.additionalProperties, root, p, errors, depth + 1);
      }
    }
    if (s.allOf) {
      for (const sub of s.allOf) {
        if (oneofReported && isOneofConstraint(sub)) continue;
        check(set, v, sub, root, path, errors, depth + 1);
      }
    }
  } else if (s.allOf) {
    for (const sub of s.allOf) check(set, v, sub, root, path, errors, depth + 1);
  }
  if (s.anyOf) {
    const ok = s.anyOf.some((sub) => check_ok(set, v, sub, root, depth));
    if (!ok) errors.push({ path, message: anyOfMessage(s.anyOf, v) });
  }
  if (s.oneOf) {
    const n = s.oneOf.filter((sub) => check_ok(set, v, sub, root, depth)).length;
    if (n !== 1) errors.push({ path, message: n === 0 ? "matches none of the allowed forms" : "matches more than one allowed form" });
  }
  if (s.not && check_ok(set, v, s.not, root, depth)) {
    errors.push({ path, message: "is not allowed here" });
  }
}

/** The most map entries checked against `map.keys` / `map.values` rules. */
const MAX_MAP_RULE_CHECKS = 1_000;

/** buf.validate `map.keys` and `map.values` rules (only in x-buf-validate) checked per entry. */
function checkMapRules(
  set: SchemaSet,
  obj: Record<string, unknown>,
  s: JSONSchema,
  mapRules: BufRules,
  root: JSONSchema,
  path: string,
  errors: ValidationError[],
  depth: number,
): void {
  const keyRules = mapRules.keys as BufRules | undefined;
  const valueRules = mapRules.values as BufRules | undefined;
  if (!keyRules && !valueRules) return;
  const keySchema = rulesSchema(keyRules);
  const valueSchema = rulesSchema(valueRules);
  const integralKey = /int|fixed/.test(s["x-proto-map-key"] ?? "");
  let n = 0;
  for (const [key, child] of Object.entries(obj)) {
    if (++n > MAX_MAP_RULE_CHECKS) return;
    const p = childPath(path, key);
    if (keyRules) {
      const found: ValidationError[] = [];
      const k = integralKey && /^-?\d+$/.test(key) ? Number(key) : key;
      check(set, k, keySchema, root, p, found, depth + 1);
      ruleOnlyChecks(k, keyRules, p, found);
      if (found.length) errors.push({ path: p, rule: true, message: `invalid key ${JSON.stringify(key)}: ${found[0].message} (buf.validate: ${ruleLines({ map: { keys: keyRules } }).join(", ")})` });
    }
    if (valueRules) {
      const found: ValidationError[] = [];
      check(set, child, valueSchema, root, p, found, depth + 1);
      ruleOnlyChecks(child, valueRules, p, found);
      for (const e of found) errors.push({ ...e, rule: true, message: `${e.message} (buf.validate: ${ruleLines({ map: { values: valueRules } }).join(", ")})` });
    }
  }
}

function check_ok(set: SchemaSet, v: unknown, s: JSONSchema, root: JSONSchema, depth: number): boolean {
  const errs: ValidationError[] = [];
  check(set, v, s, root, "$", errs, depth + 1);
  return errs.length === 0;
}

function isOneofConstraint(s: JSONSchema): boolean {
  return Array.isArray(s.oneOf) && s.oneOf.some((b) => b.not !== undefined);
}

function expectation(s: JSONSchema, types: string[]): string {
  if (s["x-proto-enum-values"]) return "an enum value name (string) or number";
  if (s.format === "date-time") return 'an RFC 3339 timestamp string like "2026-03-14T09:00:00Z"';
  if (s.contentEncoding === "base64") return "a base64 string";
  if (types.includes("string") && types.includes("integer")) return "an integer or a decimal string (64-bit)";
  const names = types.map((t) => (t === "integer" ? "an integer" : t === "object" ? "an object" : t === "array" ? "an array" : t === "null" ? "null" : `a ${t}`));
  return names.join(" or ");
}

function patternMessage(s: JSONSchema, v: string): string {
  if (s.format === "date-time") return `"${v}" is not an RFC 3339 timestamp (e.g. "2026-03-14T09:00:00Z")`;
  if (s.pattern?.endsWith("s$")) return `"${v}" is not a duration (e.g. "1.5s", "300s")`;
  if (s.contentEncoding === "base64") return `"${v}" is not valid base64`;
  if (s.pattern === "^-?[0-9]+$") return `"${v}" is not an integer`;
  if (s.pattern === "^[0-9]+$") return `"${v}" is not an unsigned integer`;
  return `"${v}" does not match ${s.pattern}`;
}

function anyOfMessage(branches: JSONSchema[], v: unknown): string {
  const names = branches.flatMap((b) => (Array.isArray(b.enum) ? b.enum.filter((e) => typeof e === "string") : []));
  const others = branches
    .filter((b) => !Array.isArray(b.enum))
    .flatMap((b) => (b.type === undefined ? [] : Array.isArray(b.type) ? b.type : [b.type]));
  const otherText = others.length ? expectation({}, [...new Set(others)]) : "";
  if (names.length && typeof v === "string" && !others.includes("string") && !others.includes("number")) {
    return `"${v}" is not one of ${names.join(", ")}`;
  }
  if (names.length && typeof v === "number" && others.includes("integer")) {
    return `${v} is not an allowed enum number`;
  }
  if (names.length) {
    const quoted = names.map((n) => JSON.stringify(n)).join(", ");
    return `expected ${otherText ? `${otherText} or ` : ""}one of ${quoted}, got ${describe(v)}`;
  }
  return `${describe(v)} is not allowed here`;
}

function suggest(key: string, known: string[]): string | null {
  const lower = key.toLowerCase().replace(/_/g, "");
  for (const k of known) if (k.toLowerCase() === lower) return k;
  let best: string | null = null;
  let bestD = 3;
  for (const k of known) {
    const d = distance(key, k);
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best;
}

function distance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0];
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j];
      dp[j] = Math.min(dp[j] + 1, dp[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length];
}

/** Parses JSON and reports a syntax error with line and column. */
export function parseJson(text: string): { ok: true; value: Json } | { ok: false; message: string; line?: number; column?: number } {
  if (!text.trim()) return { ok: true, value: {} };
  try {
    return { ok: true, value: JSON.parse(text) as Json };
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    const m = /position (\d+)/.exec(msg);
    if (m) {
      const pos = Number(m[1]);
      const before = text.slice(0, pos);
      const line = before.split("\n").length;
      const column = pos - before.lastIndexOf("\n");
      const clean = msg.replace(/^JSON\.parse: /, "").replace(/ in JSON at position \d+.*$/, "");
      return { ok: false, message: clean, line, column };
    }
    return { ok: false, message: msg };
  }
}
