import { loadJson, saveJson } from "./storage";

/** A schema source the user loaded, as it can be replayed or shared. */
export type SourceSpec =
  | { kind: "path"; value: string }
  | { kind: "repo"; value: string }
  | { kind: "buf"; value: string }
  | { kind: "reflect"; value: string; useTls: boolean; serverName: string }
  | { kind: "upload"; value: string; fileCount: number; descriptorSet: boolean; loose?: boolean };

export interface SourceRecord {
  spec: SourceSpec;
  at: number;
  services: string[];
  fileCount: number;
}

const KEY = "catalog.sources.v1";

/** Loads done in this browser tab's session (sessionStorage: they die with the session). */
export function loadSources(): SourceRecord[] {
  return loadJson<SourceRecord[]>("session", KEY, []);
}

export function saveSources(list: SourceRecord[]): void {
  saveJson("session", KEY, list);
}

export function describeSource(s: SourceSpec): string {
  switch (s.kind) {
    case "path":
      return s.value;
    case "repo":
      return `git: ${s.value}`;
    case "buf":
      return `buf: ${s.value}`;
    case "reflect":
      return `reflection: ${s.value}${s.useTls ? " (TLS)" : ""}`;
    case "upload":
      return s.descriptorSet ? `uploaded descriptor set ${s.value}` : `uploaded ${s.fileCount} file${s.fileCount === 1 ? "" : "s"} (${s.value})`;
  }
}

/** Compact text form used in shared URLs: "path:/x", "reflect:host:port", … (not uploads). */
export function encodeSource(s: SourceSpec): string | null {
  switch (s.kind) {
    case "path":
    case "repo":
    case "buf":
      return `${s.kind}:${s.value}`;
    case "reflect":
      return `${s.useTls ? "reflects" : "reflect"}:${s.value}${s.serverName ? `#${s.serverName}` : ""}`;
    default:
      return null;
  }
}

export function decodeSource(text: string): SourceSpec | null {
  const i = text.indexOf(":");
  if (i < 0) return null;
  const kind = text.slice(0, i);
  const value = text.slice(i + 1);
  if (!value) return null;
  if (kind === "path" || kind === "repo" || kind === "buf") return { kind, value };
  if (kind === "reflect" || kind === "reflects") {
    const [endpoint, serverName = ""] = value.split("#");
    return { kind: "reflect", value: endpoint, useTls: kind === "reflects", serverName };
  }
  return null;
}

/** The source that brought a service into the session, if it can be named. */
export function sourceOfService(records: SourceRecord[], service: string): SourceSpec | null {
  for (let i = records.length - 1; i >= 0; i--) {
    if (records[i].services.includes(service)) return records[i].spec;
  }
  return null;
}
