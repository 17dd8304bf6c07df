import type { ComponentChildren, TargetedEvent } from "preact";
import { useEffect, useState } from "preact/hooks";
import { errorText } from "../api/client";
import type { LoadProtosResponse } from "../gen/catalog/v1/catalog_pb";
import { methodHash, navigate } from "../lib/route";
import { describeSource, type SourceSpec } from "../lib/sources";
import { collectPicked, planUpload, type PickedFile } from "../lib/upload";
import { loadSource, toast, useAppState } from "../state/store";
import { IconRefresh, IconUpload } from "./icons";
import { Spinner, Tabs } from "./ui";

type SourceTab = "path" | "upload" | "reflect" | "buf" | "repo";

export interface LoadOutcome {
  spec: SourceSpec;
  response?: LoadProtosResponse;
  error?: string;
}

let lastOutcome: LoadOutcome | null = null;
const outcomeListeners = new Set<(o: LoadOutcome | null) => void>();
function publish(o: LoadOutcome | null) {
  lastOutcome = o;
  for (const fn of outcomeListeners) fn(o);
}

/** Loads a source and publishes the outcome to the Sources panel (and a toast). */
export async function runLoad(spec: SourceSpec, upload?: Parameters<typeof loadSource>[1]): Promise<LoadOutcome> {
  let outcome: LoadOutcome;
  try {
    const response = await loadSource(spec, upload);
    outcome = { spec, response };
    if (response.success) {
      const n = response.loadedServices.length;
      toast(`Loaded ${n} service${n === 1 ? "" : "s"} from ${describeSource(spec)}`, "success");
    }
  } catch (e) {
    outcome = { spec, error: errorText(e) };
  }
  publish(outcome);
  return outcome;
}

/** Uploads picked or dropped files (.proto files or one descriptor set). */
export async function runUpload(files: PickedFile[], root: string): Promise<LoadOutcome | null> {
  const plan = await planUpload(files);
  if (plan.kind === "error") {
    const spec: SourceSpec = { kind: "upload", value: root || "files", fileCount: files.length, descriptorSet: false };
    const o = { spec, error: plan.message };
    publish(o);
    toast(plan.message, "error", 6000);
    return o;
  }
  if (plan.kind === "descriptor") {
    const spec: SourceSpec = { kind: "upload", value: plan.name, fileCount: 1, descriptorSet: true };
    return runLoad(spec, { source: { case: "descriptorSet", value: plan.bytes } });
  }
  const loose = !root || /\.proto$/i.test(root); // picked files, not a folder
  const spec: SourceSpec = { kind: "upload", value: root || "files", fileCount: plan.count, descriptorSet: false, loose };
  return runLoad(spec, { source: { case: "protoFiles", value: { files: plan.files } } });
}

const TABS: { id: SourceTab; label: string }[] = [
  { id: "path", label: "Folder or file" },
  { id: "upload", label: "Upload" },
  { id: "reflect", label: "Reflection" },
  { id: "buf", label: "Buf module" },
  { id: "repo", label: "Git repository" },
];

export function SourcesPanel({ compact }: { compact?: boolean }) {
  const [tab, setTab] = useState<SourceTab>("path");
  const [busy, setBusy] = useState(false);
  const [outcome, setOutcome] = useState<LoadOutcome | null>(lastOutcome);
  const [path, setPath] = useState("");
  const [reflect, setReflect] = useState({ endpoint: "", useTls: false, serverName: "" });
  const [buf, setBuf] = useState("");
  const [repo, setRepo] = useState("");
  const { sources } = useAppState();

  // Keep the panel in sync with loads started elsewhere (drops on the page).
  useEffect(() => {
    outcomeListeners.add(setOutcome);
    return () => {
      outcomeListeners.delete(setOutcome);
    };
  }, []);

  const go = async (spec: SourceSpec) => {
    setBusy(true);
    try {
      await runLoad(spec);
    } finally {
      setBusy(false);
    }
  };

  const onSubmit = (e: TargetedEvent<HTMLFormElement>) => {
    e.preventDefault();
    if (busy) return;
    if (tab === "path" && path.trim()) void go({ kind: "path", value: path.trim() });
    if (tab === "reflect" && reflect.endpoint.trim())
      void go({ kind: "reflect", value: reflect.endpoint.trim(), useTls: reflect.useTls, serverName: reflect.serverName.trim() });
    if (tab === "buf" && buf.trim()) void go({ kind: "buf", value: buf.trim() });
    if (tab === "repo" && repo.trim()) void go({ kind: "repo", value: repo.trim() });
  };

  const onFiles = async (list: FileList | null) => {
    if (!list || !list.length) return;
    setBusy(true);
    try {
      const { files, root } = collectPicked(list);
      await runUpload(files, root);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class={`card sources ${compact ? "sources-compact" : ""}`} aria-labelledby="sources-title">
      <div class="card-head">
        <h2 id="sources-title">Load schemas</h2>
        <p class="muted">Schemas are loaded into your session on the catalog server. Load as many sources as you like.</p>
      </div>
      <Tabs tabs={TABS} active={tab} onChange={(id) => setTab(id as SourceTab)} label="Schema source" idPrefix="src" />
      <div id="src-panel" role="tabpanel" aria-labelledby={`src-tab-${tab}`}>
      <form class="source-form" onSubmit={onSubmit} aria-label={TABS.find((t) => t.id === tab)?.label}>
        {tab === "path" && (
          <>
            <label class="field">
              <span class="field-label">Path on the catalog server</span>
              <input
                name="proto_path"
                type="text"
                required
                spellcheck={false}
                placeholder="/home/me/api/proto or ./examples/weather"
                value={path}
                onInput={(e) => setPath(e.currentTarget.value)}
              />
              <span class="field-help">
                A folder (the import root: every .proto below it is compiled), one .proto file, or a descriptor set (.binpb, .pb, .protoset).
              </span>
            </label>
            <SubmitRow busy={busy} label="Load folder" />
          </>
        )}
        {tab === "upload" && <UploadBox busy={busy} onFiles={onFiles} />}
        {tab === "reflect" && (
          <>
            <label class="field">
              <span class="field-label">Server address</span>
              <input
                name="reflection_endpoint"
                type="text"
                required
                spellcheck={false}
                placeholder="localhost:50051"
                value={reflect.endpoint}
                onInput={(e) => setReflect({ ...reflect, endpoint: e.currentTarget.value })}
              />
              <span class="field-help">host:port of a server with gRPC server reflection enabled (v1 or v1alpha).</span>
            </label>
            <div class="field-row">
              <label class="check">
                <input type="checkbox" checked={reflect.useTls} onChange={(e) => setReflect({ ...reflect, useTls: e.currentTarget.checked })} />
                <span>Use TLS</span>
              </label>
              <label class="field field-inline">
                <span class="field-label">Server name</span>
                <input
                  type="text"
                  spellcheck={false}
                  placeholder="(from the address)"
                  disabled={!reflect.useTls}
                  value={reflect.serverName}
                  onInput={(e) => setReflect({ ...reflect, serverName: e.currentTarget.value })}
                />
              </label>
            </div>
            <SubmitRow busy={busy} label="Load by reflection" />
          </>
        )}
        {tab === "buf" && (
          <>
            <label class="field">
              <span class="field-label">Buf module</span>
              <input
                type="text"
                required
                spellcheck={false}
                placeholder="buf.build/acme/weather or /path/to/workspace"
                value={buf}
                onInput={(e) => setBuf(e.currentTarget.value)}
              />
              <span class="field-help">A local Buf module or workspace directory (with buf.yaml), or a Buf Schema Registry reference.</span>
            </label>
            <SubmitRow busy={busy} label="Load module" />
          </>
        )}
        {tab === "repo" && (
          <>
            <label class="field">
              <span class="field-label">Git repository</span>
              <input
                type="text"
                required
                spellcheck={false}
                placeholder="github.com/acme/apis//proto@v1.2.0"
                value={repo}
                onInput={(e) => setRepo(e.currentTarget.value)}
              />
              <span class="field-help">
                <code>host/owner/repo</code>, optionally <code>//sub/dir</code> and <code>@ref</code>, or a clone URL.
              </span>
            </label>
            <SubmitRow busy={busy} label="Clone and load" />
          </>
        )}
      </form>
      </div>
      {outcome && <Outcome outcome={outcome} onDismiss={() => publish(null)} />}
      {sources.length > 0 && (
        <div class="loaded">
          <h3>Loaded in this session</h3>
          <ul class="loaded-list">
            {sources.map((r) => (
              <li>
                <span class="loaded-src" title={describeSource(r.spec)}>
                  {describeSource(r.spec)}
                </span>
                <span class="muted small">
                  {r.services.length} service{r.services.length === 1 ? "" : "s"}
                </span>
                {r.spec.kind !== "upload" && (
                  <button type="button" class="btn btn-ghost btn-sm" disabled={busy} onClick={() => go(r.spec)} title="Load this source again (picks up changes)">
                    <IconRefresh />
                    <span>Reload</span>
                  </button>
                )}
              </li>
            ))}
          </ul>
        </div>
      )}
    </section>
  );
}

function SubmitRow({ busy, label }: { busy: boolean; label: string }) {
  return (
    <div class="form-actions">
      <button type="submit" class="btn btn-primary" disabled={busy}>
        {busy ? <Spinner label="Loading schemas" /> : null}
        <span>{busy ? "Loading…" : label}</span>
      </button>
    </div>
  );
}

function UploadBox({ busy, onFiles }: { busy: boolean; onFiles: (l: FileList | null) => void }) {
  return (
    <div class="upload">
      <div class="dropzone" aria-hidden="true">
        <IconUpload size={28} />
        <p>
          <strong>Drop .proto files, a folder or a descriptor set</strong> anywhere on this page
        </p>
        <p class="muted small">A dropped folder is the import root: imports resolve relative to it.</p>
      </div>
      <div class="upload-buttons">
        <label class={`btn btn-secondary ${busy ? "is-disabled" : ""}`}>
          <input
            type="file"
            class="visually-hidden"
            data-testid="pick-folder"
            // Non-standard but supported by every current browser: pick a whole folder.
            {...{ webkitdirectory: true }}
            multiple
            disabled={busy}
            onChange={(e) => {
              onFiles(e.currentTarget.files);
              e.currentTarget.value = "";
            }}
          />
          <span>Choose a folder…</span>
        </label>
        <label class={`btn btn-secondary ${busy ? "is-disabled" : ""}`}>
          <input
            type="file"
            class="visually-hidden"
            data-testid="pick-files"
            multiple
            accept=".proto,.binpb,.pb,.protoset,.desc,.bin"
            disabled={busy}
            onChange={(e) => {
              onFiles(e.currentTarget.files);
              e.currentTarget.value = "";
            }}
          />
          <span>Choose files…</span>
        </label>
        {busy && <Spinner label="Uploading" />}
      </div>
    </div>
  );
}

/** Highlights "file:line:col:" at the start of compile error lines. */
function ErrorLines({ text }: { text: string }) {
  const lines = text.split("\n");
  return (
    <pre class="error-lines">
      {lines.map((l) => {
        const m = /^(\S+?\.proto):(\d+)(?::(\d+))?:\s?(.*)$/.exec(l);
        if (!m) return <div>{l}</div>;
        return (
          <div>
            <span class="loc">
              {m[1]}:{m[2]}
              {m[3] ? `:${m[3]}` : ""}
            </span>{" "}
            {m[4]}
          </div>
        );
      })}
    </pre>
  );
}

/** The missing import a failed load names ("x.proto imports 'a/b.proto'"), if any. */
export function missingImport(text: string): { importer: string; name: string; more: number } | null {
  const m = /(\S+\.proto) imports ['"]([^'"]+)['"](?: \(and (\d+) more\))?/.exec(text);
  return m ? { importer: m[1], name: m[2], more: Number(m[3] ?? 0) } : null;
}

/** What to do about an import that did not resolve: which file is missing, and which
 * folder to upload (or to give as importPaths) so that its path resolves. */
function ImportHint({ text, spec }: { text: string; spec: SourceSpec }) {
  const miss = missingImport(text);
  if (!miss) return null;
  const top = miss.name.includes("/") ? `${miss.name.split("/")[0]}/` : null;
  const loose = spec.kind === "upload" && !spec.descriptorSet && (spec.loose ?? false);
  const folder = top ? (
    <>
      the folder that contains <code>{top}</code>
    </>
  ) : (
    <>
      the folder that holds <code>{miss.name}</code>
    </>
  );
  return (
    <div class="import-hint" data-testid="import-hint">
      <p>
        <strong>Missing import:</strong> <code>{miss.name}</code> (imported by <code>{miss.importer}</code>
        {miss.more ? `, and ${miss.more} more missing` : ""}).
      </p>
      {spec.kind === "upload" ? (
        <p class="small">
          {loose ? "You uploaded loose files, so the catalog has only the files you picked. " : ""}
          Upload the folder of your protos instead (its import root: {folder}, so that <code>{miss.name}</code> is a path inside it), or add{" "}
          <code>{miss.name.split("/").pop()}</code> to the upload. If the file is on the catalog's server, load by path with{" "}
          <code>importPaths</code> set to {folder}.
        </p>
      ) : (
        <p class="small">
          Set <code>importPaths</code> to {folder} (or start the catalog with <code>--import-path</code>), or load the folder above
          yours that holds both.
        </p>
      )}
    </div>
  );
}

function Outcome({ outcome, onDismiss }: { outcome: LoadOutcome; onDismiss: () => void }) {
  const r = outcome.response;
  let body: ComponentChildren;
  if (outcome.error || (r && !r.success)) {
    body = (
      <div class="result result-error" role="alert">
        <div class="result-title">Could not load {describeSource(outcome.spec)}</div>
        <ErrorLines text={outcome.error ?? r?.error ?? "unknown error"} />
        <ImportHint text={outcome.error ?? r?.error ?? ""} spec={outcome.spec} />
      </div>
    );
  } else if (r) {
    const first = r.loadedServices[0];
    body = (
      <div class="result result-ok" role="status">
        <div class="result-title">
          Loaded {r.loadedServices.length} service{r.loadedServices.length === 1 ? "" : "s"} from {describeSource(outcome.spec)}
        </div>
        <p class="muted small">
          The session now holds {r.serviceCount} service{r.serviceCount === 1 ? "" : "s"} from {r.fileCount} file{r.fileCount === 1 ? "" : "s"}.
        </p>
        {r.importRoot && (
          <p class="small" data-testid="import-root">
            Imports resolved from the folder <code>{r.importRoot}</code> (found above the one given).
          </p>
        )}
        {r.placedFiles.length > 0 && (
          <p class="small" data-testid="placed-files">
            Uploaded files placed where their importers look for them: {r.placedFiles.map((p) => <code key={p}>{p}</code>)}
          </p>
        )}
        {r.loadedServices.length > 0 && (
          <ul class="result-services">
            {r.loadedServices.map((s) => (
              <li>
                <ServiceLink name={s} />
              </li>
            ))}
          </ul>
        )}
        {!first && <p class="muted small">The source defines no services (only messages); nothing new to call.</p>}
      </div>
    );
  }
  return (
    <div class="outcome">
      {body}
      <button type="button" class="btn btn-ghost btn-sm outcome-dismiss" onClick={onDismiss} aria-label="Dismiss">
        ×
      </button>
    </div>
  );
}

function ServiceLink({ name }: { name: string }) {
  const { services } = useAppState();
  const svc = services.find((s) => s.name === name);
  const m = svc?.methods[0];
  if (!m) return <code>{name}</code>;
  return (
    <a href={methodHash(name, m.name)} onClick={(e) => { e.preventDefault(); navigate(methodHash(name, m.name)); }}>
      <code>{name}</code> <span class="muted small">· {svc.methods.length} methods</span>
    </a>
  );
}
