import { loadJson, saveJson } from "./storage";

export type Theme = "light" | "dark";
const KEY = "catalog.theme";

export function currentTheme(): Theme {
  const saved = loadJson<Theme | null>("local", KEY, null);
  if (saved === "light" || saved === "dark") return saved;
  return window.matchMedia?.("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

export function applyTheme(t: Theme, persist = false): void {
  const root = document.documentElement;
  // The switch is instant: colour transitions are held off for it, so no control is ever
  // drawn with the new text colour on a background still fading from the old theme.
  root.classList.add("theme-switching");
  root.dataset.theme = t;
  root.style.colorScheme = t;
  void root.offsetHeight; // apply the new colours with transitions off
  requestAnimationFrame(() => root.classList.remove("theme-switching"));
  if (persist) saveJson("local", KEY, t);
}
