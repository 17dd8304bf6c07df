import { loadJson, saveJson } from "./storage";

export type Theme = "light" | "dark";
const KEY = "catalog.theme";

export function currentTheme(): Theme {
  const saved = loadJson<Theme | null>("local", KEY, null);
  if (saved === "light" || saved === "dark") return saved;
  return window.matchMedia?.("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

export function applyTheme(t: Theme, persist = false): void {
  document.documentElement.dataset.theme = t;
  document.documentElement.style.colorScheme = t;
  if (persist) saveJson("local", KEY, t);
}
