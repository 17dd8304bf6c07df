// Small, failure-tolerant wrappers around Web Storage (it can be disabled or full).

export function loadJson<T>(storage: "local" | "session", key: string, fallback: T): T {
  try {
    const s = storage === "local" ? localStorage : sessionStorage;
    const raw = s.getItem(key);
    return raw === null ? fallback : (JSON.parse(raw) as T);
  } catch {
    return fallback;
  }
}

export function saveJson(storage: "local" | "session", key: string, value: unknown): void {
  try {
    const s = storage === "local" ? localStorage : sessionStorage;
    s.setItem(key, JSON.stringify(value));
  } catch {
    // Full or disabled storage: the feature degrades to this page's lifetime.
  }
}
