import { useEffect, useState } from "preact/hooks";
import { decodeSource, describeSource } from "../lib/sources";
import { shortName } from "../lib/format";
import { methodHash, navigate } from "../lib/route";
import { ruleLines } from "../schema/types";
import { ensureSchema, useAppState } from "../state/store";
import { runLoad } from "./Sources";
import { SchemaTree } from "./SchemaTree";
import { TryIt } from "./TryIt";
import { KindBadge, methodKind, Paragraphs, Spinner } from "./ui";

export function MethodPage({ serviceName, methodName }: { serviceName: string; methodName: string }) {
  const { services, schemas, booted, route } = useAppState();
  const svc = services.find((s) => s.name === serviceName);
  const entry = schemas[serviceName];

  useEffect(() => {
    // Also after a load elsewhere cleared the cached schemas (entry gone).
    if (svc && !entry) void ensureSchema(serviceName);
  }, [serviceName, !!svc, !entry]);

  useEffect(() => {
    document.title = `${methodName} · ${shortName(serviceName)} — connectrpc-catalog`;
    return () => {
      document.title = "connectrpc-catalog";
    };
  }, [serviceName, methodName]);

  if (!booted) return <div class="page" />;
  if (!svc) return <NotLoaded serviceName={serviceName} methodName={methodName} source={route.page === "method" ? route.source : undefined} />;
  const method = svc.methods.find((m) => m.name === methodName);
  if (!method) {
    return (
      <div class="page">
        <div class="card empty">
          <h1>No method {methodName}</h1>
          <p>
            The service <code>{serviceName}</code> has no method called <code>{methodName}</code>. Its methods:
          </p>
          <ul>
            {svc.methods.map((m) => (
              <li>
                <a href={methodHash(svc.name, m.name)}>{m.name}</a>
              </li>
            ))}
          </ul>
        </div>
      </div>
    );
  }
  const kind = methodKind(method);
  const set = entry?.status === "ready" ? entry.set : undefined;
  return (
    <div class="page method-page">
      <header class="method-head">
        <nav class="crumbs muted small" aria-label="Breadcrumb">
          <span class="mono">{svc.package}</span>
          <span aria-hidden="true">/</span>
          <span class="mono">{shortName(svc.name)}</span>
        </nav>
        <div class="method-title">
          <h1 class={method.deprecated ? "strike" : ""}>{method.name}</h1>
          <KindBadge kind={kind} long />
          {method.deprecated && <span class="badge badge-warn">deprecated</span>}
        </div>
        <p class="signature mono small">
          <span class="muted">rpc</span> {method.name}({method.clientStreaming ? <span class="kw">stream </span> : null}
          <a href="#request-schema" class="type-link">{method.inputType}</a>) <span class="muted">returns</span> (
          {method.serverStreaming ? <span class="kw">stream </span> : null}
          <a href="#response-schema" class="type-link">{method.outputType}</a>)
        </p>
      </header>
      <div class="method-grid">
        <section class="card area-docs" aria-label="Documentation">
          {method.documentation ? (
            <Paragraphs text={method.documentation} />
          ) : svc.hasSourceInfo ? (
            <p class="muted" data-testid="no-comment">This method has no documentation comment in its .proto file.</p>
          ) : (
            <p class="muted" data-testid="no-source-info">
              This source carries no comments (server reflection sends none): load the .proto files too and their documentation shows here.
            </p>
          )}
          <Options options={method.options} testId="method-options" />
          {(svc.documentation || svc.options.length > 0 || svc.fileOptions.length > 0) && (
            <details class="svc-doc">
              <summary>About {shortName(svc.name)}</summary>
              {svc.documentation && <Paragraphs text={svc.documentation} />}
              <Options options={svc.options} testId="service-options" />
              {svc.fileOptions.length > 0 && (
                <>
                  <p class="muted small">Options of {svc.file || "its file"}:</p>
                  <Options options={svc.fileOptions} testId="file-options" />
                </>
              )}
            </details>
          )}
        </section>
        <div class="area-try">{set && <TryIt key={`${svc.name}/${method.name}`} service={svc} method={method} set={set} />}</div>
        <div class="area-schemas">
          {entry?.status === "loading" && (
            <section class="card">
              <Spinner label="Loading schema" /> <span class="muted">Loading the schema…</span>
            </section>
          )}
          {entry?.status === "error" && (
            <section class="card result-error" role="alert">
              <p>Could not load the schema of {svc.name}: {entry.error}</p>
              <button type="button" class="btn btn-secondary btn-sm" onClick={() => ensureSchema(serviceName, true)}>
                Try again
              </button>
            </section>
          )}
          {set && (
            <>
              <section class="card" id="request-schema" aria-labelledby="req-schema-title">
                <h2 id="req-schema-title" class="schema-title">
                  Request <span class="mono muted">{method.inputType}</span>
                  {method.clientStreaming && <span class="badge kind-client">stream</span>}
                </h2>
                <MessageDoc set={set} name={method.inputType} />
                <SchemaTree set={set} name={method.inputType} idPrefix="in" />
              </section>
              <section class="card" id="response-schema" aria-labelledby="resp-schema-title">
                <h2 id="resp-schema-title" class="schema-title">
                  Response <span class="mono muted">{method.outputType}</span>
                  {method.serverStreaming && <span class="badge kind-server">stream</span>}
                </h2>
                <MessageDoc set={set} name={method.outputType} />
                <SchemaTree set={set} name={method.outputType} idPrefix="out" />
              </section>
            </>
          )}
        </div>
      </div>
    </div>
  );
}

/** Options set on a method, a service or a file (google.api.http, go_package, custom ones). */
function Options({ options, testId }: { options: { name: string; valueJson: string }[]; testId: string }) {
  const shown = options.filter((o) => o.name !== "deprecated");
  if (!shown.length) return null;
  return (
    <dl class="options small" data-testid={testId}>
      {shown.map((o) => (
        <div key={o.name} class="option">
          <dt class="mono">option {o.name}</dt>
          <dd class="mono">{o.valueJson}</dd>
        </div>
      ))}
    </dl>
  );
}

function MessageDoc({ set, name }: { set: NonNullable<ReturnType<typeof useAppState>["schemas"][string]["set"]>; name: string }) {
  const schema = set.message(name)?.schema;
  const doc = schema?.description;
  const rules = ruleLines(schema?.["x-buf-validate"]);
  const oneofs = Object.entries(schema?.["x-buf-validate-oneofs"] ?? {});
  if (!doc && !rules.length && !oneofs.length) return null;
  return (
    <>
      {doc && <Paragraphs text={doc} class="message-doc" />}
      {(rules.length > 0 || oneofs.length > 0) && (
        <p class="message-rules small" data-testid="message-rules">
          buf.validate: {rules.map((r) => <code key={r}>{r}</code>)}
          {oneofs.map(([group, r]) => (
            <code key={group}>
              oneof {group}: {ruleLines(r).join(", ")}
            </code>
          ))}
        </p>
      )}
    </>
  );
}

function NotLoaded({ serviceName, methodName, source }: { serviceName: string; methodName: string; source?: string }) {
  const spec = source ? decodeSource(source) : null;
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  return (
    <div class="page">
      <section class="card empty" aria-labelledby="nl-title">
        <h1 id="nl-title">
          {shortName(serviceName)}.{methodName} is not loaded
        </h1>
        <p>
          This link opens <code>{serviceName}/{methodName}</code>, but your session has no schema for <code>{serviceName}</code>
          {spec ? "." : " — load the schemas that define it first."}
        </p>
        {spec ? (
          <>
            <p>
              The link was made with the schemas from <strong>{describeSource(spec)}</strong>.
            </p>
            <div class="form-actions">
              <button
                type="button"
                class="btn btn-primary"
                disabled={busy}
                onClick={async () => {
                  setBusy(true);
                  setError(null);
                  const o = await runLoad(spec);
                  setBusy(false);
                  if (o.error || !o.response?.success) setError(o.error ?? o.response?.error ?? "load failed");
                }}
              >
                {busy ? <Spinner label="Loading" /> : null}
                <span>Load {describeSource(spec)}</span>
              </button>
              <button type="button" class="btn btn-ghost" onClick={() => navigate("#/sources")}>
                Other sources…
              </button>
            </div>
            {error && (
              <pre class="error-lines" role="alert">
                {error}
              </pre>
            )}
          </>
        ) : (
          <div class="form-actions">
            <button type="button" class="btn btn-primary" onClick={() => navigate("#/sources")}>
              Load schemas
            </button>
          </div>
        )}
      </section>
    </div>
  );
}
