import { loadJson, saveJson } from "./storage";
import type { TargetSettings } from "./target";

export interface HistoryEntry {
  id: string;
  at: number;
  /** Request messages as JSON texts (one for unary and server streaming). */
  requests: string[];
  target: TargetSettings;
  statusCode: number;
  statusName: string;
  durationMs: number;
  messageCount?: number;
}

const KEY = "catalog.history.v1";
const PER_METHOD = 25;
const METHODS = 100;

type Store = Record<string, HistoryEntry[]>;

export function methodKey(service: string, method: string): string {
  return `${service}/${method}`;
}

export function loadHistory(key: string): HistoryEntry[] {
  return loadJson<Store>("local", KEY, {})[key] ?? [];
}

export function addHistory(key: string, entry: HistoryEntry): HistoryEntry[] {
  const all = loadJson<Store>("local", KEY, {});
  const list = [entry, ...(all[key] ?? [])].slice(0, PER_METHOD);
  delete all[key];
  all[key] = list;
  const keys = Object.keys(all);
  for (const old of keys.slice(0, Math.max(0, keys.length - METHODS))) delete all[old];
  saveJson("local", KEY, all);
  return list;
}

export function clearHistory(key: string): void {
  const all = loadJson<Store>("local", KEY, {});
  delete all[key];
  saveJson("local", KEY, all);
}
