// An example string for a buf.validate `string.pattern` (RE2 syntax): I/O-free, no
// dependencies, bounded before work. Parses the subset real APIs use — literals and
// escapes, `.`, \d \w \s \D \W \S, bracket classes (ranges, negation, [:alpha:]),
// groups, (?:…), named groups, alternation, ? * + {n} {n,} {n,m} (lazy too), the anchors
// ^ $ \A \z \b \B (zero-width) and flag groups such as (?i) — and builds the shortest
// string it matches, widened towards a minimum length by repeating the last repeatable
// part. Anything else (backreferences, lookaround, \p{…} classes, possessive
// quantifiers…) gives up: `null`. The caller verifies every candidate with the browser's
// own RegExp (`patternRegExp`), since RE2 and JavaScript differ.

/** The longest pattern looked at. */
export const MAX_PATTERN = 1_000;
/** The deepest nesting of groups. */
export const MAX_DEPTH = 32;
/** The longest example produced. */
export const MAX_OUTPUT = 256;
/** RE2's own bound on a counted repetition. */
const MAX_REPEAT = 1_000;
/** Work bound for one generation (nodes visited). */
const MAX_STEPS = 20_000;

type Range = [number, number];

type Node =
  | { k: "set"; ranges: Range[] }
  | { k: "cat"; items: Node[] }
  | { k: "alt"; items: Node[] }
  | { k: "rep"; node: Node; min: number; max: number; id: number }
  | { k: "empty" };

class GiveUp extends Error {}

const MAX_CP = 0x10ffff;
const DIGIT: Range[] = [[0x30, 0x39]];
const WORD: Range[] = [
  [0x30, 0x39],
  [0x41, 0x5a],
  [0x5f, 0x5f],
  [0x61, 0x7a],
];
const SPACE: Range[] = [
  [0x09, 0x0a],
  [0x0c, 0x0d],
  [0x20, 0x20],
];
const POSIX: Record<string, Range[]> = {
  alpha: [
    [0x41, 0x5a],
    [0x61, 0x7a],
  ],
  digit: DIGIT,
  alnum: [
    [0x30, 0x39],
    [0x41, 0x5a],
    [0x61, 0x7a],
  ],
  upper: [[0x41, 0x5a]],
  lower: [[0x61, 0x7a]],
  space: [
    [0x09, 0x0d],
    [0x20, 0x20],
  ],
  xdigit: [
    [0x30, 0x39],
    [0x41, 0x46],
    [0x61, 0x66],
  ],
  word: WORD,
  punct: [
    [0x21, 0x2f],
    [0x3a, 0x40],
    [0x5b, 0x60],
    [0x7b, 0x7e],
  ],
};

function normalize(ranges: Range[]): Range[] {
  const sorted = ranges.map((r) => [r[0], r[1]] as Range).sort((a, b) => a[0] - b[0]);
  const out: Range[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r[0] <= last[1] + 1) last[1] = Math.max(last[1], r[1]);
    else out.push(r);
  }
  return out;
}

function complement(ranges: Range[]): Range[] {
  const out: Range[] = [];
  let next = 0;
  for (const [lo, hi] of normalize(ranges)) {
    if (lo > next) out.push([next, lo - 1]);
    next = hi + 1;
  }
  if (next <= MAX_CP) out.push([next, MAX_CP]);
  return out;
}

function has(ranges: Range[], cp: number): boolean {
  return ranges.some(([lo, hi]) => cp >= lo && cp <= hi);
}

/** The characters tried first, most readable first: a-z, 0-9, A-Z, - _ ., then the rest of printable ASCII. */
const PREFERRED: number[] = (() => {
  const out: number[] = [];
  const add = (lo: number, hi: number) => {
    for (let c = lo; c <= hi; c++) if (!out.includes(c)) out.push(c);
  };
  add(0x61, 0x7a);
  add(0x30, 0x39);
  add(0x41, 0x5a);
  for (const c of "-_.") add(c.charCodeAt(0), c.charCodeAt(0));
  add(0x21, 0x7e);
  add(0x20, 0x20);
  return out;
})();

/** The `n`th character of a set in the preferred order (null: there are not that many). */
function nth(ranges: Range[], n: number): string | null {
  let seen = 0;
  for (const c of PREFERRED) {
    if (has(ranges, c)) {
      if (seen === n) return String.fromCodePoint(c);
      seen++;
    }
  }
  if (seen === 0 && n === 0) {
    // No printable ASCII: the lowest printable code point of the set.
    for (const [lo, hi] of ranges) {
      let c = Math.max(lo, 0xa0);
      if (c >= 0xd800 && c <= 0xdfff) c = 0xe000; // no lone surrogates
      if (c <= hi) return String.fromCodePoint(c);
    }
  }
  return null;
}

function choices(ranges: Range[]): number {
  let n = 0;
  for (const c of PREFERRED) if (has(ranges, c)) n++;
  return n || 1;
}

class Parser {
  private i = 0;
  private depth = 0;
  private reps = 0;
  constructor(private readonly src: string) {}

  parse(): Node {
    const node = this.alternation();
    if (this.i < this.src.length) throw new GiveUp(); // an unmatched ")"
    return node;
  }

  private peek(): string {
    return this.src[this.i] ?? "";
  }

  private alternation(): Node {
    const items = [this.concat()];
    while (this.peek() === "|") {
      this.i++;
      items.push(this.concat());
    }
    return items.length === 1 ? items[0] : { k: "alt", items };
  }

  private concat(): Node {
    const items: Node[] = [];
    while (this.i < this.src.length && this.peek() !== "|" && this.peek() !== ")") {
      let atom = this.atom();
      if (atom === null) continue; // a flag group such as (?i)
      atom = this.quantified(atom);
      items.push(atom);
    }
    return items.length === 1 ? items[0] : { k: "cat", items };
  }

  private quantified(atom: Node): Node {
    let out = atom;
    let quantified = false;
    for (;;) {
      const c = this.peek();
      let min: number;
      let max: number;
      if (c === "?" || c === "*" || c === "+") {
        this.i++;
        [min, max] = c === "?" ? [0, 1] : c === "*" ? [0, Infinity] : [1, Infinity];
      } else if (c === "{") {
        const m = /^\{(\d+)(,(\d*))?\}/.exec(this.src.slice(this.i, this.i + 24));
        if (!m) return out; // RE2: a "{" that is no repetition is a literal
        this.i += m[0].length;
        min = Number(m[1]);
        max = m[2] === undefined ? min : m[3] === "" ? Infinity : Number(m[3]);
        if (min > MAX_REPEAT || (max !== Infinity && (max > MAX_REPEAT || max < min))) throw new GiveUp();
      } else {
        return out;
      }
      if (quantified) throw new GiveUp(); // RE2 refuses "a**"
      if (atom.k === "empty") throw new GiveUp(); // a repeated anchor
      quantified = true;
      if (this.peek() === "?") this.i++; // lazy: same strings
      else if (this.peek() === "+") throw new GiveUp(); // possessive: not RE2
      out = { k: "rep", node: out, min, max, id: this.reps++ };
    }
  }

  private atom(): Node | null {
    const c = this.src[this.i++];
    switch (c) {
      case "(":
        return this.group();
      case "[":
        return { k: "set", ranges: this.bracket() };
      case ".":
        return { k: "set", ranges: complement([[0x0a, 0x0a]]) };
      case "^":
      case "$":
        return { k: "empty" };
      case "\\":
        return this.escape();
      case "*":
      case "+":
      case "?":
        throw new GiveUp(); // nothing to repeat
      default: {
        const cp = this.src.codePointAt(this.i - 1)!;
        if (cp > 0xffff) this.i++;
        return { k: "set", ranges: [[cp, cp]] };
      }
    }
  }

  private group(): Node | null {
    if (this.peek() === "?") {
      const rest = this.src.slice(this.i, this.i + 40);
      const flags = /^\?([imsU]*(?:-[imsU]*)?)(\)|:)/.exec(rest);
      const named = /^\?P?<[A-Za-z_][A-Za-z0-9_]*>/.exec(rest);
      if (flags && flags[1] !== "" && flags[1] !== "-") {
        this.i += flags[0].length;
        if (flags[2] === ")") return null; // (?i): flags for what follows; no text
      } else if (rest.startsWith("?:")) {
        this.i += 2;
      } else if (named) {
        this.i += named[0].length;
      } else {
        throw new GiveUp(); // lookaround, atomic groups, conditionals…
      }
    }
    if (++this.depth > MAX_DEPTH) throw new GiveUp();
    const inner = this.alternation();
    this.depth--;
    if (this.peek() !== ")") throw new GiveUp();
    this.i++;
    return inner;
  }

  /** A backslash escape outside a class: a set, an anchor or a literal. */
  private escape(): Node {
    const c = this.src[this.i++];
    if (c === undefined) throw new GiveUp();
    const cls = classEscape(c);
    if (cls) return { k: "set", ranges: cls };
    if ("AzbB".includes(c)) return { k: "empty" };
    if (c === "Q") {
      const end = this.src.indexOf("\\E", this.i);
      const text = this.src.slice(this.i, end < 0 ? undefined : end);
      this.i = end < 0 ? this.src.length : end + 2;
      const items: Node[] = [...text].map((ch) => ({ k: "set", ranges: [[ch.codePointAt(0)!, ch.codePointAt(0)!]] }) as Node);
      return items.length === 1 ? items[0] : { k: "cat", items };
    }
    const cp = this.literalEscape(c);
    return { k: "set", ranges: [[cp, cp]] };
  }

  /** The code point of an escape that stands for one character (gives up on the rest). */
  private literalEscape(c: string): number {
    const simple: Record<string, number> = { n: 0x0a, t: 0x09, r: 0x0d, f: 0x0c, v: 0x0b, a: 0x07 };
    if (c in simple) return simple[c];
    if (c === "x") {
      const m = /^(?:\{([0-9A-Fa-f]{1,6})\}|([0-9A-Fa-f]{2}))/.exec(this.src.slice(this.i, this.i + 9));
      if (!m) throw new GiveUp();
      this.i += m[0].length;
      const cp = parseInt(m[1] ?? m[2], 16);
      if (cp > MAX_CP) throw new GiveUp();
      return cp;
    }
    // Punctuation escapes itself; letters and digits (backreferences, \p, \C, octal) are not supported.
    if (/[A-Za-z0-9]/.test(c)) throw new GiveUp();
    return c.codePointAt(0)!;
  }

  /** A bracket class, after its "[". */
  private bracket(): Range[] {
    let negate = false;
    if (this.peek() === "^") {
      negate = true;
      this.i++;
    }
    const ranges: Range[] = [];
    let first = true;
    for (;;) {
      if (this.i >= this.src.length) throw new GiveUp();
      const c = this.peek();
      if (c === "]" && !first) {
        this.i++;
        break;
      }
      first = false;
      if (c === "[" && this.src[this.i + 1] === ":") {
        const m = /^\[:(\^?)([a-z]+):\]/.exec(this.src.slice(this.i, this.i + 16));
        if (!m || !POSIX[m[2]]) throw new GiveUp();
        this.i += m[0].length;
        ranges.push(...(m[1] ? complement(POSIX[m[2]]) : POSIX[m[2]]));
        continue;
      }
      const lo = this.classChar();
      if (Array.isArray(lo)) {
        ranges.push(...lo);
        continue;
      }
      if (this.peek() === "-" && this.src[this.i + 1] !== "]" && this.i + 1 < this.src.length) {
        this.i++;
        const hi = this.classChar();
        if (Array.isArray(hi) || hi < lo) throw new GiveUp();
        ranges.push([lo, hi]);
      } else {
        ranges.push([lo, lo]);
      }
    }
    const set = normalize(ranges);
    return negate ? complement(set) : set;
  }

  /** One member of a class: a code point, or a set for \d and friends. */
  private classChar(): number | Range[] {
    const c = this.src[this.i];
    if (c === "\\") {
      this.i += 2;
      const e = this.src[this.i - 1];
      if (e === undefined) throw new GiveUp();
      const cls = classEscape(e);
      if (cls) return cls;
      return this.literalEscape(e);
    }
    const cp = this.src.codePointAt(this.i)!;
    this.i += cp > 0xffff ? 2 : 1;
    return cp;
  }
}

function classEscape(c: string): Range[] | null {
  switch (c) {
    case "d":
      return DIGIT;
    case "D":
      return complement(DIGIT);
    case "w":
      return WORD;
    case "W":
      return complement(WORD);
    case "s":
      return SPACE;
    case "S":
      return complement(SPACE);
    default:
      return null;
  }
}

/** One character position of the output: a literal or a choice from a set. */
interface Slot {
  ranges: Range[];
  ch: string;
}

class Generator {
  private steps = 0;
  constructor(readonly counts: Map<number, number>) {}

  gen(n: Node, out: Slot[]): void {
    if (++this.steps > MAX_STEPS || out.length > MAX_OUTPUT) throw new GiveUp();
    switch (n.k) {
      case "empty":
        return;
      case "set": {
        const ch = nth(n.ranges, 0);
        if (ch === null) throw new GiveUp(); // an empty class matches nothing
        out.push({ ranges: n.ranges, ch });
        return;
      }
      case "cat":
        for (const item of n.items) this.gen(item, out);
        return;
      case "alt":
        this.gen(n.items[0], out);
        return;
      case "rep": {
        const times = this.counts.get(n.id) ?? n.min;
        for (let i = 0; i < times; i++) this.gen(n.node, out);
        return;
      }
    }
  }
}

/** The repetitions on the generated path, in the order they appear. */
function repsOnPath(n: Node, out: Extract<Node, { k: "rep" }>[]): void {
  switch (n.k) {
    case "cat":
      for (const item of n.items) repsOnPath(item, out);
      return;
    case "alt":
      repsOnPath(n.items[0], out);
      return;
    case "rep":
      out.push(n);
      repsOnPath(n.node, out);
      return;
    default:
      return;
  }
}

function codePoints(slots: Slot[]): number {
  return slots.length;
}

export interface ExampleOptions {
  /** At least this many characters when the pattern allows it. */
  minLen?: number;
  /** At most this many characters (null when it cannot be). */
  maxLen?: number;
  /** The `n`th distinct example (map keys, unique items): 0 is the first. */
  variant?: number;
}

/** The parsed form of a pattern, or null when it is outside the supported subset. */
function parsePattern(pattern: string): Node | null {
  if (typeof pattern !== "string" || pattern.length > MAX_PATTERN) return null;
  if (parsed.has(pattern)) return parsed.get(pattern)!;
  let ast: Node | null;
  try {
    ast = new Parser(pattern).parse();
  } catch (e) {
    if (!(e instanceof GiveUp || e instanceof RangeError)) throw e;
    ast = null;
  }
  if (parsed.size > 256) parsed.clear();
  parsed.set(pattern, ast);
  return ast;
}

/** Parsed patterns (a form builds its example again on every reset). */
const parsed = new Map<string, Node | null>();

/**
 * A string the RE2 `pattern` matches, as short as the pattern allows but at least
 * `minLen` characters when it can be and at most `maxLen`; null when the pattern is
 * outside the supported subset or the bounds cannot be met. Deterministic.
 */
export function regexExample(pattern: string, options: ExampleOptions = {}): string | null {
  const ast = parsePattern(pattern);
  if (!ast) return null;
  const minLen = Math.min(Math.max(0, options.minLen ?? 0), MAX_OUTPUT);
  const maxLen = Math.min(options.maxLen ?? MAX_OUTPUT, MAX_OUTPUT);
  try {
    const counts = new Map<number, number>();
    let slots = generate(ast, counts);
    if (codePoints(slots) < minLen) {
      // Widen: the last repeatable part first, then the ones before it.
      const reps: Extract<Node, { k: "rep" }>[] = [];
      repsOnPath(ast, reps);
      for (let r = reps.length - 1; r >= 0 && codePoints(slots) < minLen; r--) {
        const rep = reps[r];
        if (rep.max <= rep.min) continue;
        const unit = generate(rep.node, counts).length;
        if (unit === 0) continue;
        const need = Math.ceil((minLen - codePoints(slots)) / unit);
        counts.set(rep.id, Math.min(rep.max, (counts.get(rep.id) ?? rep.min) + need));
        slots = generate(ast, counts);
      }
    }
    if (codePoints(slots) > maxLen) return null;
    let chosen = vary(slots, options.variant ?? 0);
    // Not that many distinct strings of this length: one repetition more, a few times.
    const reps: Extract<Node, { k: "rep" }>[] = [];
    if (chosen === null) repsOnPath(ast, reps);
    const last = [...reps].reverse().find((r) => (counts.get(r.id) ?? r.min) < r.max);
    for (let i = 0; chosen === null && last && i < 8; i++) {
      const count = counts.get(last.id) ?? last.min;
      if (count >= last.max) break;
      counts.set(last.id, count + 1);
      slots = generate(ast, counts);
      if (codePoints(slots) > maxLen) return null;
      chosen = vary(slots, options.variant ?? 0);
    }
    return chosen === null ? null : chosen.map((s) => s.ch).join("");
  } catch (e) {
    if (e instanceof GiveUp || e instanceof RangeError) return null;
    throw e;
  }
}

function generate(ast: Node, counts: Map<number, number>): Slot[] {
  const out: Slot[] = [];
  new Generator(counts).gen(ast, out);
  if (out.length > MAX_OUTPUT) throw new GiveUp();
  return out;
}

/** The `variant`th combination of choices, counting from the last free position. */
function vary(slots: Slot[], variant: number): Slot[] | null {
  if (!Number.isInteger(variant) || variant < 0) return null;
  const out = slots.map((s) => ({ ...s }));
  let v = variant;
  for (let j = out.length - 1; j >= 0 && v > 0; j--) {
    const size = choices(out[j].ranges);
    if (size < 2) continue;
    const ch = nth(out[j].ranges, v % size);
    if (ch === null) return null;
    out[j].ch = ch;
    v = Math.floor(v / size);
  }
  return v > 0 ? null : out;
}

const compiled = new Map<string, RegExp | null>();

/** POSIX classes (inside brackets) as JavaScript ranges. */
const POSIX_JS: Record<string, string> = {
  alpha: "A-Za-z",
  digit: "0-9",
  alnum: "0-9A-Za-z",
  upper: "A-Z",
  lower: "a-z",
  space: "\\t\\n\\v\\f\\r ",
  xdigit: "0-9A-Fa-f",
  word: "0-9A-Za-z_",
  punct: "!-\\/:-@\\[-`{-~",
};

/** Escapes JavaScript's "u" flag allows outside a class (RE2 allows any punctuation). */
const JS_SYNTAX = "^$\\.*+?()[]{}|/";

/**
 * An RE2 pattern in JavaScript's spelling, for the "u" flag: \A and \z as ^ and $ (the
 * same without the "m" flag), (?P<name> as (?<name>, [:alpha:]-style classes as ranges,
 * escaped punctuation JavaScript does not escape (\-, \@, \#…) as itself, and a "]" that
 * opens a class as \] (RE2 reads it literally; JavaScript reads "[]" as empty).
 */
function toJs(body: string): string {
  let out = "";
  let inClass = false;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c === "\\") {
      const n = body[i + 1] ?? "";
      i++;
      if (n === "A" && !inClass) out += "^";
      else if (n === "z" && !inClass) out += "$";
      else if (/^[!-/:-@[-`{-~]$/.test(n) && !JS_SYNTAX.includes(n) && !(inClass && n === "-")) out += n;
      else out += `\\${n}`;
      continue;
    }
    if (!inClass && body.startsWith("(?P<", i)) {
      out += "(?<";
      i += 3;
      continue;
    }
    if (inClass && c === "[" && body[i + 1] === ":") {
      const m = /^\[:([a-z]+):\]/.exec(body.slice(i, i + 12));
      if (m && POSIX_JS[m[1]]) {
        out += POSIX_JS[m[1]];
        i += m[0].length - 1;
        continue;
      }
    }
    if (c === "[" && !inClass) {
      inClass = true;
      out += c;
      if (body[i + 1] === "^") {
        out += "^";
        i++;
      }
      if (body[i + 1] === "]") {
        out += "\\]";
        i++;
      }
      continue;
    }
    if (c === "]" && inClass) inClass = false;
    out += c;
  }
  return out;
}

/**
 * The browser's RegExp for an RE2 pattern (null when JavaScript cannot compile it): with
 * the "u" flag, a leading flag group such as (?i) as flags, and RE2's spellings
 * JavaScript lacks said its way (`toJs`).
 */
export function patternRegExp(pattern: string): RegExp | null {
  if (typeof pattern !== "string" || pattern.length > MAX_PATTERN) return null;
  if (compiled.has(pattern)) return compiled.get(pattern)!;
  let re: RegExp | null = null;
  if (!pattern.includes("[:^")) {
    // (a negated POSIX class has no JavaScript spelling)
    const m = /^\(\?([ims]+)\)/.exec(pattern);
    try {
      re = new RegExp(toJs(m ? pattern.slice(m[0].length) : pattern), `u${m ? [...new Set(m[1])].join("") : ""}`);
    } catch {
      re = null;
    }
  }
  if (compiled.size > 256) compiled.clear();
  compiled.set(pattern, re);
  return re;
}

declare global {
  interface Window {
    /** The example generator, reachable from end-to-end tests. */
    __catalogRegexample?: { regexExample: typeof regexExample; patternRegExp: typeof patternRegExp };
  }
}
if (typeof window !== "undefined") window.__catalogRegexample = { regexExample, patternRegExp };
