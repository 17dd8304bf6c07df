// One open collection: its requests (open, run, edit, duplicate, reorder, delete), saving
// the request as edited on the method page (draft.ts), its environments, and run results.
import { useEffect, useRef, useState } from "preact/hooks";
import { errorText } from "../../api/client";
import type { Assertion, Collection, Environment, RunResult, SavedRequest } from "../../gen/catalog/v1/collections_pb";
import { navigate, shareHash } from "../../lib/route";
import { transportLabel } from "../../lib/target";
import { toast } from "../../state/store";
import { appendPage, collectionLink, collections, isStaleToken, MAX_PAGE, PAGE, reloadSize, useWhenVisible } from "./api";
import { fromDraft, openInForm, useRequestDraft, type RequestDraft } from "./draft";
import { EnvironmentEditor } from "./EnvironmentEditor";

interface Props {
  collection: Collection;
  env: string;
  onChanged: () => Promise<void>;
}

export function CollectionView({ collection, env, onChanged }: Props) {
  const draft = useRequestDraft();
  const [requests, setRequests] = useState<SavedRequest[]>([]);
  const [envs, setEnvs] = useState<Environment[]>([]);
  const [results, setResults] = useState<Record<string, RunResult>>({});
  const [editing, setEditing] = useState<string>("");
  const [busy, setBusy] = useState(false);
  const [saving, setSaving] = useState(false);
  const [next, setNext] = useState("");
  const [total, setTotal] = useState(0);
  const shown = useRef(0);
  const nextRef = useRef("");
  const loading = useRef(false);
  const end = useRef<HTMLLIElement>(null);

  // The requests in pages (GetCollection pageSize/pageToken), in the collection's order;
  // the environments come with the first page. A reload after a change asks for as many
  // requests as are shown, so the list does not shrink back to one page.
  const load = async () => {
    try {
      const r = await collections.getCollection({ id: collection.id, pageSize: reloadSize(shown.current) });
      shown.current = r.requests.length;
      nextRef.current = r.nextPageToken;
      setRequests(r.requests);
      setNext(r.nextPageToken);
      setTotal(r.collection?.requestCount ?? r.requests.length);
      setEnvs(r.environments);
    } catch (e) {
      toast(errorText(e), "error", 6000);
    }
  };
  useEffect(() => {
    shown.current = 0;
    void load();
  }, [collection.id]);

  const loadMore = async () => {
    const token = nextRef.current;
    if (!token || loading.current) return;
    loading.current = true;
    try {
      const r = await collections.getCollection({ id: collection.id, pageSize: PAGE, pageToken: token });
      nextRef.current = r.nextPageToken;
      setRequests((have) => {
        const all = appendPage(have, r.requests);
        shown.current = all.length;
        return all;
      });
      setNext(r.nextPageToken);
      setTotal(r.collection?.requestCount ?? 0);
    } catch (e) {
      if (isStaleToken(e)) await load();
      else toast(errorText(e), "error", 6000);
    } finally {
      loading.current = false;
    }
  };
  useWhenVisible(end, () => void loadMore(), !!next);

  /** Every request id in order (a reorder names them all): the pages not loaded yet
  are read first. */
  const allIds = async (): Promise<string[]> => {
    let all = requests;
    let token = nextRef.current;
    while (token) {
      const r = await collections.getCollection({ id: collection.id, pageSize: MAX_PAGE, pageToken: token });
      all = appendPage(all, r.requests);
      token = r.nextPageToken;
    }
    return all.map((r) => r.id);
  };

  const act = async (work: () => Promise<unknown>) => {
    setSaving(true); // no run of what is being changed
    try {
      await work();
      await load();
      await onChanged();
    } catch (e) {
      toast(errorText(e), "error", 6000);
    } finally {
      setSaving(false);
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
    void act(async () => {
      const ids = await allIds();
      const [id] = ids.splice(i, 1);
      ids.splice(i + by, 0, id);
      await collections.reorderRequests({ collectionId: collection.id, requestIds: ids });
    });
  };

  return (
    <section class="coll-view" data-testid="collection-view">
      <header class="coll-head">
        <h2>{collection.name}</h2>
        <span class="muted">{collection.personal ? "personal" : `shared with ${collection.team === "*" ? "everyone" : collection.team}`}</span>
        <button type="button" class="btn btn-primary btn-sm" disabled={busy || saving || !requests.length} onClick={() => run([])} data-testid="run-all">
          {busy ? "Running…" : `Run all${env ? ` (${env})` : ""}`}
        </button>
        <button type="button" class="btn btn-ghost btn-sm" onClick={() => navigator.clipboard?.writeText(collectionLink(collection.id))}>
          Copy link
        </button>
      </header>
      <SaveDraft collectionId={collection.id} draft={draft} onSaved={load} />
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
                <button
                  type="button"
                  class="btn btn-ghost btn-sm"
                  onClick={() => {
                    openInForm(r);
                    navigate(openHash(r));
                  }}
                >
                  Open
                </button>
                <button type="button" class="btn btn-ghost btn-sm" disabled={busy || saving} onClick={() => run([r.id])}>
                  Run
                </button>
                <button type="button" class="btn btn-ghost btn-sm" onClick={() => setEditing(editing === r.id ? "" : r.id)}>
                  Edit
                </button>
                {draftOf(draft, r) && (
                  <button
                    type="button"
                    class="btn btn-ghost btn-sm"
                    data-testid="update-from-form"
                    title="Replace its endpoint, transport, metadata, messages and TLS choices with the method page's"
                    onClick={() => act(() => collections.saveRequest({ request: { ...requestInit(r), ...fromDraft(draftOf(draft, r)!) } }))}
                  >
                    Update from form
                  </button>
                )}
                <button type="button" class="btn btn-ghost btn-sm" onClick={() => act(() => collections.duplicateRequest({ id: r.id }))}>
                  Duplicate
                </button>
                <button type="button" class="btn btn-ghost btn-sm" aria-label="Move up" disabled={i === 0} onClick={() => move(i, -1)}>
                  ↑
                </button>
                <button type="button" class="btn btn-ghost btn-sm" aria-label="Move down" disabled={i === requests.length - 1 && !next} onClick={() => move(i, 1)}>
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
        {next !== "" && (
          <li ref={end}>
            <button type="button" class="btn btn-ghost btn-sm coll-more" onClick={() => void loadMore()} data-testid="load-more-requests">
              Load more requests ({requests.length} of {total})
            </button>
          </li>
        )}
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

/** The method page's draft, when it is `r`'s method. */
function draftOf(draft: RequestDraft | null, r: SavedRequest): RequestDraft | null {
  return draft && draft.service === r.service && draft.method === r.method ? draft : null;
}

/** Save the request as edited on the method page (sent or not). */
function SaveDraft({ collectionId, draft, onSaved }: { collectionId: string; draft: RequestDraft | null; onSaved: () => Promise<void> }) {
  const [name, setName] = useState("");
  if (!draft) return <p class="muted coll-hint">Open a method to save its request here.</p>;
  const save = async (e: Event) => {
    e.preventDefault();
    try {
      await collections.saveRequest({
        request: {
          collectionId,
          name: name.trim() || draft.method,
          ...fromDraft(draft),
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
      <input aria-label="Saved request name" placeholder={`Name (default: ${draft.method})`} value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
      <button type="submit" class="btn btn-primary btn-sm" data-testid="save-current">
        Save {draft.method} request
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
      <MessagesEditor messages={draft.requestMessagesJson} onChange={(requestMessagesJson) => setDraft({ ...draft, requestMessagesJson })} />
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

/** The request message, or every message of a client stream (added, removed, edited). */
function MessagesEditor({ messages, onChange }: { messages: string[]; onChange: (m: string[]) => void }) {
  const list = messages.length ? messages : [""];
  const many = list.length > 1;
  const set = (i: number, text: string) => onChange(list.map((m, j) => (j === i ? text : m)));
  return (
    <fieldset class="coll-messages" data-testid="messages-editor">
      <legend>{many ? `Messages (${list.length}; JSON, {{variables}} allowed)` : "Request (JSON; {{variables}} allowed)"}</legend>
      {list.map((m, i) => (
        <div class="coll-message" data-testid="message-row">
          <textarea rows={4} aria-label={many ? `Message ${i + 1}` : "Request message"} value={m} onInput={(e) => set(i, (e.target as HTMLTextAreaElement).value)} />
          {many && (
            <button type="button" class="btn btn-ghost btn-sm" aria-label={`Remove message ${i + 1}`} onClick={() => onChange(list.filter((_, j) => j !== i))}>
              ×
            </button>
          )}
        </div>
      ))}
      {many && (
        <button type="button" class="btn btn-ghost btn-sm" data-testid="add-message" onClick={() => onChange([...list, "{}"])}>
          Add message
        </button>
      )}
    </fieldset>
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
