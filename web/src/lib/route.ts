import { b64urlDecode, b64urlEncode } from "./format";

export type Route =
  | { page: "home" }
  | { page: "sources" }
  | { page: "types"; query: string }
  | { page: "type"; name: string }
  | {
      page: "method";
      service: string;
      method: string;
      /** Shared request messages (JSON texts), when the link carries them. */
      requests?: string[];
      endpoint?: string;
      transport?: string;
      source?: string;
    };

export function parseRoute(hash: string): Route {
  const h = hash.replace(/^#/, "");
  const [path, query = ""] = h.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "sources") return { page: "sources" };
  if (parts[0] === "types") return { page: "types", query: new URLSearchParams(query).get("q") ?? "" };
  if (parts[0] === "t" && parts[1]) return { page: "type", name: parts[1] };
  if (parts[0] === "m" && parts.length >= 3) {
    const q = new URLSearchParams(query);
    const route: Route = { page: "method", service: parts[1], method: parts[2] };
    const req = q.get("req");
    if (req) {
      try {
        const decoded = b64urlDecode(req);
        const parsed: unknown = JSON.parse(decoded);
        route.requests = q.get("multi") === "1" && Array.isArray(parsed) ? parsed.map((m) => JSON.stringify(m, null, 2)) : [JSON.stringify(parsed, null, 2)];
      } catch {
        // A damaged link still opens the method, with the example request.
      }
    }
    route.endpoint = q.get("ep") ?? undefined;
    route.transport = q.get("tr") ?? undefined;
    route.source = q.get("src") ?? undefined;
    return route;
  }
  return { page: "home" };
}

/** A stable link to a message or enum type's page. */
export function typeHash(name: string): string {
  return `#/t/${encodeURIComponent(name)}`;
}

export function methodHash(service: string, method: string): string {
  return `#/m/${encodeURIComponent(service)}/${encodeURIComponent(method)}`;
}

export interface ShareParts {
  service: string;
  method: string;
  requests: unknown[];
  multi: boolean;
  endpoint?: string;
  transport?: string;
  source?: string | null;
}

export function shareHash(p: ShareParts): string {
  const q = new URLSearchParams();
  q.set("req", b64urlEncode(JSON.stringify(p.multi ? p.requests : p.requests[0] ?? {})));
  if (p.multi) q.set("multi", "1");
  if (p.endpoint) q.set("ep", p.endpoint);
  if (p.transport) q.set("tr", p.transport);
  if (p.source) q.set("src", p.source);
  return `${methodHash(p.service, p.method)}?${q.toString()}`;
}

export function navigate(hash: string): void {
  if (window.location.hash !== hash) window.location.hash = hash;
}
