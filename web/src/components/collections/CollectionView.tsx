// One open collection: its requests (open, run, edit, duplicate, reorder, delete), saving
// the last call of the method on screen, its environments, and run results.
import { useEffect, useState } from "preact/hooks";
import { errorText } from "../../api/client";
import { Transport } from "../../gen/catalog/v1/catalog_pb";
import type { Assertion, Collection, Environment, RunResult, SavedRequest } from "../../gen/catalog/v1/collections_pb";
import { loadHistory, methodKey, type HistoryEntry } from "../../lib/history";
import { navigate, shareHash, type Route } from "../../lib/route";
import { transportLabel } from "../../lib/target";
import { toast, useAppState } from "../../state/store";
import { collectionLink, collections } from "./api";
import { EnvironmentEditor } from "./EnvironmentEditor";

interface Props {
  collection: Collection;
  env: string;
  onChanged: () => Promise<void>;
}

export function CollectionView({ collection, env, onChanged }: Props) {
  const { route } = useAppState();
  const [requests, setRequests] = useState<SavedRequest[]>([]);
  const [envs, setEnvs] = useState<Environment[]>([]);
  const [results, setResults] = useState<Record<string, RunResult>>({});
  const [editing, setEditing] = useState<string>("");
  const [busy, setBusy] = useState(false);

  const load = async () => {
    try {
      const r = await collections.getCollection({ id: collection.id });
      setRequests(r.requests);
      setEnvs(r.environments);
    } catch (e) {
      toast(errorText(e), "error", 6000);
    }
  };
  useEffect(() => {
    void load();
  }, [collection.id]);

  const act = async (work: () => Promise<unknown>) => {
    try {
      await work();
      await load();
      await onChanged();
    } catch (e) {
      toast(errorText(e), "error", 6000);
    }
  };

  const run = async (ids: string[]) => {
    setBusy(true);
    try {
      const r = await collections.runRequests({ collectionId: collection.id, requestIds: ids, environment: env });
      setResults((old) => ({ ...old, ...Object.fromEntries(r.results.map((x) => [x.requestId, x])) }));
      toast(`${r.passed} passed, ${r.failed} failed`, r.failed ? "error" : "success");
    } catch (e) {
      toast(errorText(e), "error", 6000);
    } finally {
      setBusy(false);
    }
  };

  const move = (i: number, by: number) => {
    const ids = requests.map((r) => r.id);
    const [id] = ids.splice(i, 1);
    ids.splice(i + by, 0, id);
    void act(() => collections.reorderRequests({ collectionId: collection.id, requestIds: ids }));
  };

  return (
    <section class="coll-view" data-testid="collection-view">
      <header class="coll-head">
        <h2>{collection.name}</h2>
        <span class="muted">{collection.personal ? "personal" : `shared with ${collection.team === "*" ? "everyone" : collection.team}`}</span>
        <button type="button" class="btn btn-primary btn-sm" disabled={busy || !requests.length} onClick={() => run([])} data-testid="run-all">
          {busy ? "Running…" : `Run all${env ? ` (${env})` : ""}`}
        </button>
        <button type="button" class="btn btn-ghost btn-sm" onClick={() => navigator.clipboard?.writeText(collectionLink(collection.id))}>
          Copy link
        </button>
      </header>
      <SaveCurrent collectionId={collection.id} onSaved={load} />
      <ol class="coll-requests">
        {requests.map((r, i) => (
          <li data-testid="saved-request">
            <div class="coll-row">
              <strong>{r.name}</strong>
              <span class="muted">
                {r.folder ? `${r.folder}/ · ` : ""}
                {r.service.split(".").pop()}.{r.method}
              </span>
              <span class="coll-actions">
                <button type="button" class="btn btn-ghost btn-sm" onClick={() => navigate(openHash(r))}>
                  Open
                </button>
                <button type="button" class="btn btn-ghost btn-sm" disabled={busy} onClick={() => run([r.id])}>
                  Run
                </button>
                <button type="button" class="btn btn-ghost btn-sm" onClick={() => setEditing(editing === r.id ? "" : r.id)}>
                  Edit
                </button>
                {lastCallOf(route, r) && (
                  <button
                    type="button"
                    class="btn btn-ghost btn-sm"
                    data-testid="update-from-call"
                    onClick={() => act(() => collections.saveRequest({ request: { ...requestInit(r), ...lastCall(lastCallOf(route, r)!) } }))}
                  >
                    Update from last call
                  </button>
                )}
                <button type="button" class="btn btn-ghost btn-sm" onClick={() => act(() => collections.duplicateRequest({ id: r.id }))}>
                  Duplicate
                </button>
                <button type="button" class="btn btn-ghost btn-sm" aria-label="Move up" disabled={i === 0} onClick={() => move(i, -1)}>
                  ↑
                </button>
                <button type="button" class="btn btn-ghost btn-sm" aria-label="Move down" disabled={i === requests.length - 1} onClick={() => move(i, 1)}>
                  ↓
                </button>
                <button type="button" class="btn btn-ghost btn-sm" onClick={() => act(() => collections.deleteRequest({ id: r.id }))}>
                  Delete
                </button>
              </span>
            </div>
            {editing === r.id && (
              <RequestEditor
                request={r}
                onSave={(next) =>
                  act(async () => {
                    await collections.saveRequest({ request: requestInit(next) });
                    setEditing("");
                  })
                }
              />
            )}
            {results[r.id] && <ResultView result={results[r.id]} />}
          </li>
        ))}
      </ol>
      <EnvironmentEditor collectionId={collection.id} envs={envs} onSaved={() => act(async () => undefined)} />
    </section>
  );
}

/** A plain init object of a request edited as a spread copy (protobuf-es wants either
a message or plain data, not a mix). */
function requestInit(r: SavedRequest) {
  const tls = r.tls;
  return {
    id: r.id,
    collectionId: r.collectionId,
    folder: r.folder,
    name: r.name,
    description: r.description,
    service: r.service,
    method: r.method,
    endpoint: r.endpoint,
    transport: r.transport,
    metadata: { ...r.metadata },
    requestMessagesJson: [...r.requestMessagesJson],
    tls: tls ? { useTls: tls.useTls, serverName: tls.serverName, insecureSkipVerify: tls.insecureSkipVerify, caCertPem: tls.caCertPem } : undefined,
    assertions: r.assertions.map((a) => ({ kind: a.kind, path: a.path, op: a.op, value: a.value })),
    timeoutSeconds: r.timeoutSeconds,
    connectCodec: r.connectCodec,
  };
}

function openHash(r: SavedRequest): string {
  const parsed = r.requestMessagesJson.map((m) => {
    try {
      return JSON.parse(m) as unknown;
    } catch {
      return {};
    }
  });
  return shareHash({
    service: r.service,
    method: r.method,
    requests: parsed,
    multi: parsed.length > 1,
    endpoint: r.endpoint,
    transport: transportLabel(r.transport),
  });
}

/** What a call from the history puts into a saved request: where and what it sent. */
function lastCall(last: HistoryEntry) {
  const t = last.target;
  return {
    endpoint: t.endpoint,
    transport: t.transport ?? Transport.GRPC,
    metadata: Object.fromEntries(t.metadata.filter((m) => m.enabled && m.key).map((m) => [m.key, m.value])),
    requestMessagesJson: last.requests,
    tls: { useTls: t.useTls, serverName: t.serverName, insecureSkipVerify: t.insecureSkipVerify },
    timeoutSeconds: t.timeoutSeconds,
    connectCodec: t.connectCodec,
  };
}

/** The last call of the method on screen, when it is `r`'s method. */
function lastCallOf(route: Route, r: SavedRequest): HistoryEntry | undefined {
  if (route.page !== "method" || route.service !== r.service || route.method !== r.method) return undefined;
  return loadHistory(methodKey(r.service, r.method))[0];
}

function SaveCurrent({ collectionId, onSaved }: { collectionId: string; onSaved: () => Promise<void> }) {
  const { route } = useAppState();
  const [name, setName] = useState("");
  if (route.page !== "method") return <p class="muted coll-hint">Open a method and call it to save the call here.</p>;
  const last = loadHistory(methodKey(route.service, route.method))[0];
  if (!last) return <p class="muted coll-hint">Call {route.method} once to save the call here.</p>;
  const save = async (e: Event) => {
    e.preventDefault();
    try {
      await collections.saveRequest({
        request: {
          collectionId,
          name: name.trim() || route.method,
          service: route.service,
          method: route.method,
          ...lastCall(last),
          assertions: [{ kind: "status", op: "eq", value: "OK" }],
        },
      });
      setName("");
      toast("Saved", "success");
      await onSaved();
    } catch (err) {
      toast(errorText(err), "error", 6000);
    }
  };
  return (
    <form class="coll-save" onSubmit={save}>
      <input aria-label="Saved request name" placeholder={`Name (default: ${route.method})`} value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
      <button type="submit" class="btn btn-primary btn-sm" data-testid="save-current">
        Save last {route.method} call
      </button>
    </form>
  );
}

const KINDS = ["status", "field", "header", "trailer", "duration"];
const OPS = ["eq", "ne", "lt", "le", "gt", "ge", "contains", "exists", "absent"];

function RequestEditor({ request, onSave }: { request: SavedRequest; onSave: (r: SavedRequest) => void }) {
  const [draft, setDraft] = useState<SavedRequest>(request);
  const [asserts, setAsserts] = useState<Assertion[]>([...request.assertions]);
  const field = (name: "name" | "description" | "endpoint" | "folder", label: string) => (
    <label class="coll-field">
      <span>{label}</span>
      <input value={draft[name]} onInput={(e) => setDraft({ ...draft, [name]: (e.target as HTMLInputElement).value })} />
    </label>
  );
  const setA = (i: number, patch: Partial<Assertion>) => setAsserts(asserts.map((a, j) => (j === i ? { ...a, ...patch } : a)));
  return (
    <form
      class="coll-editor"
      data-testid="request-editor"
      onSubmit={(e) => {
        e.preventDefault();
        onSave({ ...draft, assertions: asserts });

      }}
    >
      {field("name", "Name")}
      {field("description", "Description")}
      {field("endpoint", "Endpoint")}
      {field("folder", "Folder")}
      <label class="coll-field">
        <span>Request (JSON; {"{{variables}}"} allowed)</span>
        <textarea
          rows={4}
          value={draft.requestMessagesJson[0] ?? ""}
          onInput={(e) => setDraft({ ...draft, requestMessagesJson: [(e.target as HTMLTextAreaElement).value, ...draft.requestMessagesJson.slice(1)] })}
        />
      </label>
      <fieldset>
        <legend>Assertions</legend>
        {asserts.map((a, i) => (
          <div class="coll-assert" data-testid="assertion-row">
            <select aria-label="Kind" value={a.kind} onChange={(e) => setA(i, { kind: (e.target as HTMLSelectElement).value })}>
              {KINDS.map((k) => (
                <option value={k}>{k}</option>
              ))}
            </select>
            <input aria-label="Path or header" placeholder="$.field or header name" value={a.path} onInput={(e) => setA(i, { path: (e.target as HTMLInputElement).value })} />
            <select aria-label="Operator" value={a.op} onChange={(e) => setA(i, { op: (e.target as HTMLSelectElement).value })}>
              {OPS.map((o) => (
                <option value={o}>{o}</option>
              ))}
            </select>
            <input aria-label="Expected value" placeholder='OK, "text", 12' value={a.value} onInput={(e) => setA(i, { value: (e.target as HTMLInputElement).value })} />
            <button type="button" class="btn btn-ghost btn-sm" aria-label="Remove assertion" onClick={() => setAsserts(asserts.filter((_, j) => j !== i))}>
              ×
            </button>
          </div>
        ))}
        <button type="button" class="btn btn-ghost btn-sm" onClick={() => setAsserts([...asserts, { kind: "field", path: "$.", op: "eq", value: "" } as Assertion])}>
          Add assertion
        </button>
      </fieldset>
      <button type="submit" class="btn btn-primary btn-sm" data-testid="save-request">
        Save
      </button>
    </form>
  );
}

function ResultView({ result }: { result: RunResult }) {
  return (
    <div class={`coll-result ${result.passed ? "is-pass" : "is-fail"}`} data-testid="run-result">
      <strong>{result.passed ? "PASS" : "FAIL"}</strong> {result.statusName || (result.error ? "not run" : "")} · {result.durationMs.toFixed(1)} ms
      {result.error && <p class="coll-error">{result.error}</p>}
      <ul>
        {result.assertions.map((a) => (
          <li class={a.passed ? "is-pass" : "is-fail"} data-testid="assertion-result">
            {a.passed ? "✓" : "✗"} {a.assertion?.kind} {a.assertion?.path} {a.assertion?.op} {a.assertion?.value} — {a.actual}
          </li>
        ))}
      </ul>
      {result.responseMessagesJson[0] && <pre class="coll-response">{result.responseMessagesJson.join("\n")}</pre>}
    </div>
  );
}
