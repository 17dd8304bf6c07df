import { Transport } from "../gen/catalog/v1/catalog_pb";
import type { SourceSpec } from "./sources";
import { metadataMap, type TargetSettings } from "./target";

export interface CallSpec {
  service: string;
  method: string;
  clientStreaming: boolean;
  serverStreaming: boolean;
  /** Compact JSON of each request message. */
  requests: string[];
  target: TargetSettings;
  source: SourceSpec | null;
}

export function shellQuote(s: string): string {
  if (/^[A-Za-z0-9_./:=@%+,-]+$/.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function baseUrl(t: TargetSettings): string {
  const ep = t.endpoint.trim() || "localhost:8080";
  if (/^https?:\/\//.test(ep)) return ep.replace(/\/$/, "");
  return `${t.useTls ? "https" : "http"}://${ep}`;
}

function hostPort(t: TargetSettings): string {
  const ep = t.endpoint.trim() || "localhost:8080";
  const m = /^(https?):\/\/([^/]+)/.exec(ep);
  if (!m) return ep;
  if (m[2].includes(":")) return m[2];
  return `${m[2]}:${m[1] === "https" ? 443 : 80}`;
}

/** The command and its first `head` words on one line, then one option per line. */
function joinLines(parts: string[], head = 1): string {
  return [parts.slice(0, head).join(" "), ...parts.slice(head)].join(" \\\n  ");
}

/** curl speaking the Connect protocol with JSON (unary methods only). */
export function curlCommand(c: CallSpec): string {
  if (c.clientStreaming || c.serverStreaming) {
    return "# curl can only make unary Connect calls (streams use enveloped frames);\n# use the buf curl or grpcurl command for this streaming method.";
  }
  let url = `${baseUrl(c.target)}/${c.service}/${c.method}`;
  const hp = hostPort(c.target);
  const overrideName = c.target.useTls && c.target.serverName ? c.target.serverName : "";
  if (overrideName) {
    // Keep TLS verification against the server name while connecting to the endpoint.
    const port = hp.slice(hp.lastIndexOf(":") + 1);
    url = `https://${overrideName}:${port}/${c.service}/${c.method}`;
  }
  const parts = [`curl -sS -X POST ${shellQuote(url)}`];
  if (c.target.useTls && c.target.insecureSkipVerify) parts.push("-k");
  if (overrideName) {
    const port = hp.slice(hp.lastIndexOf(":") + 1);
    parts.push(`--connect-to ${shellQuote(`${overrideName}:${port}:${hp}`)}`);
  }
  parts.push("-H 'Content-Type: application/json'", "-H 'Connect-Protocol-Version: 1'");
  if (c.target.timeoutSeconds > 0) parts.push(`-H 'Connect-Timeout-Ms: ${c.target.timeoutSeconds * 1000}'`);
  for (const [k, v] of Object.entries(metadataMap(c.target.metadata))) parts.push(`-H ${shellQuote(`${k}: ${v}`)}`);
  parts.push(`-d ${shellQuote(c.requests[0] ?? "{}")}`);
  return joinLines(parts);
}

const BUF_PROTOCOL: Record<number, string> = {
  [Transport.CONNECT]: "connect",
  [Transport.GRPC]: "grpc",
  [Transport.GRPC_WEB]: "grpcweb",
};

/** The file name commands use for the schema the catalog exports (ExportDescriptorSet). */
export function schemaFile(c: Pick<CallSpec, "service">): string {
  return `${c.service}.binpb`;
}

/** Whether a command should ask the server itself for the schema (server reflection). */
function viaReflection(c: CallSpec): boolean {
  return c.source?.kind === "reflect";
}

/** The tools that can make this call over the target's protocol (the tabs offered). */
export function commandTools(c: CallSpec): { id: string; label: string }[] {
  const tools: { id: string; label: string }[] = [];
  if (c.target.transport === Transport.CONNECT && !c.clientStreaming && !c.serverStreaming) tools.push({ id: "curl", label: "curl (Connect)" });
  tools.push({ id: "buf", label: "buf curl" });
  if (c.target.transport === Transport.GRPC) tools.push({ id: "grpcurl", label: "grpcurl" });
  return tools;
}

/** A header comment saying where the schema comes from (runs as pasted, from any folder). */
function schemaNote(c: CallSpec, flag: string): string {
  if (viaReflection(c)) return "# The schema comes from the server's reflection service.";
  return `# ${flag} ${schemaFile(c)}: the schema, from "Download ${schemaFile(c)}" above (or the\n# catalog's ExportDescriptorSet); keep it in the folder you run this from.`;
}

export function bufCurlCommand(c: CallSpec): string {
  const parts = ["buf curl", `--protocol ${BUF_PROTOCOL[c.target.transport] ?? "grpc"}`];
  if (!c.target.useTls && c.target.transport === Transport.GRPC) parts.push("--http2-prior-knowledge");
  if (!viaReflection(c)) parts.push(`--schema ${shellQuote(schemaFile(c))}`);
  if (c.target.useTls && c.target.serverName) parts.push(`--servername ${shellQuote(c.target.serverName)}`);
  if (c.target.useTls && c.target.insecureSkipVerify) parts.push("--insecure");
  if (c.target.timeoutSeconds > 0) parts.push(`--timeout ${c.target.timeoutSeconds}s`);
  for (const [k, v] of Object.entries(metadataMap(c.target.metadata))) parts.push(`-H ${shellQuote(`${k}: ${v}`)}`);
  parts.push(`-d ${shellQuote(c.requests.length ? c.requests.join("\n") : "{}")}`);
  parts.push(shellQuote(`${baseUrl(c.target)}/${c.service}/${c.method}`));
  return [schemaNote(c, "--schema"), joinLines(parts, parts[2] === "--http2-prior-knowledge" ? 3 : 2)].join("\n");
}

export function grpcurlCommand(c: CallSpec): string {
  const parts = ["grpcurl", c.target.useTls ? "" : "-plaintext"].filter(Boolean);
  if (!viaReflection(c)) parts.push(`-protoset ${shellQuote(schemaFile(c))}`);
  if (c.target.useTls && c.target.serverName) parts.push(`-authority ${shellQuote(c.target.serverName)}`);
  if (c.target.useTls && c.target.insecureSkipVerify) parts.push("-insecure");
  if (c.target.timeoutSeconds > 0) parts.push(`-max-time ${c.target.timeoutSeconds}`);
  for (const [k, v] of Object.entries(metadataMap(c.target.metadata))) parts.push(`-H ${shellQuote(`${k}: ${v}`)}`);
  parts.push(`-d ${shellQuote(c.requests.length ? c.requests.join("\n") : "{}")}`);
  parts.push(shellQuote(hostPort(c.target)), `${c.service}/${c.method}`);
  return [schemaNote(c, "-protoset"), joinLines(parts, parts[1] === "-plaintext" ? 2 : 1)].join("\n");
}
