// gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html).

export const STATUS_NAMES = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
] as const;

export function statusName(code: number, given?: string): string {
  if (given) return given;
  return STATUS_NAMES[code] ?? `CODE_${code}`;
}

const HINTS: Record<number, string> = {
  1: "The call was cancelled, usually by the caller.",
  2: "The server failed without saying why.",
  3: "The server rejected the request's content.",
  4: "No answer within the timeout.",
  5: "The server could not find what the request names.",
  7: "The caller may not do this.",
  12: "The server does not implement this method (check the endpoint and transport).",
  13: "The server hit an internal error.",
  14: "The server could not be reached (check the endpoint, TLS and transport).",
  16: "The request lacks valid credentials (add an authorization header under Metadata).",
};

export function statusHint(code: number): string | null {
  return HINTS[code] ?? null;
}
