import { Transport } from "../gen/catalog/v1/catalog_pb";
import { loadJson, saveJson } from "./storage";

export interface MetadataRow {
  key: string;
  value: string;
  enabled: boolean;
}

/** Where and how a method is called; remembered per service in localStorage. */
export interface TargetSettings {
  endpoint: string;
  transport: Transport;
  useTls: boolean;
  serverName: string;
  timeoutSeconds: number;
  metadata: MetadataRow[];
  /** Codec of the Connect transport: binary protobuf or JSON. */
  connectCodec: "proto" | "json";
  /** Accept any server certificate (self-signed development servers). */
  insecureSkipVerify: boolean;
}

/** PEM material for mutual TLS; kept in memory only, never in browser storage. */
export interface TlsFiles {
  caCertPem: string;
  clientCertPem: string;
  clientKeyPem: string;
}

const tlsFiles = new Map<string, TlsFiles>();

export function getTlsFiles(service: string): TlsFiles {
  return tlsFiles.get(service) ?? { caCertPem: "", clientCertPem: "", clientKeyPem: "" };
}

export function setTlsFiles(service: string, f: TlsFiles): void {
  tlsFiles.set(service, f);
}

const KEY = "catalog.targets.v1";

export const TRANSPORTS: { value: Transport; label: string; explain: string }[] = [
  {
    value: Transport.GRPC,
    label: "gRPC",
    explain: "Standard gRPC over HTTP/2 — what grpc-go, grpcio, grpc-java and most gRPC servers speak.",
  },
  {
    value: Transport.CONNECT,
    label: "Connect",
    explain: "Plain HTTP POST with JSON or binary bodies over HTTP/1.1 or HTTP/2 — connect-go, connect-es, connectrpc servers.",
  },
  {
    value: Transport.GRPC_WEB,
    label: "gRPC-Web",
    explain: "gRPC for browsers, trailers in the body, over HTTP/1.1 or HTTP/2 — servers behind Envoy or a gRPC-Web proxy.",
  },
];

export function defaultTarget(): TargetSettings {
  return {
    endpoint: "",
    transport: Transport.GRPC,
    useTls: false,
    serverName: "",
    timeoutSeconds: 30,
    metadata: [],
    connectCodec: "proto",
    insecureSkipVerify: false,
  };
}

export function loadTarget(service: string): TargetSettings | null {
  const all = loadJson<Record<string, TargetSettings>>("local", KEY, {});
  const t = all[service];
  return t ? { ...defaultTarget(), ...t } : null;
}

export function saveTarget(service: string, t: TargetSettings): void {
  const all = loadJson<Record<string, TargetSettings>>("local", KEY, {});
  all[service] = t;
  saveJson("local", KEY, all);
}

export function metadataMap(rows: MetadataRow[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const r of rows) {
    const k = r.key.trim().toLowerCase();
    if (r.enabled && k) out[k] = r.value;
  }
  return out;
}

export function transportLabel(t: Transport): string {
  return TRANSPORTS.find((x) => x.value === t)?.label ?? "gRPC";
}
