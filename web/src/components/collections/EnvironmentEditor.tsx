// A collection's environments: variables (secret ones masked: the server never sends
// their values back) and the auth helper.
import { useState } from "preact/hooks";
import { errorText } from "../../api/client";
import type { Environment, Variable } from "../../gen/catalog/v1/collections_pb";
import { toast } from "../../state/store";
import { collections } from "./api";

const FIELDS = ["kind", "token", "username", "password", "headerName", "apiKey", "tokenUrl", "clientId", "clientSecret", "scopes", "audience"] as const;
type AuthFields = Record<(typeof FIELDS)[number], string>;

const AUTH = [
  ["", "none"],
  ["bearer", "Bearer token"],
  ["basic", "Basic"],
  ["api_key", "API key header"],
  ["oauth2_client_credentials", "OAuth 2 client credentials"],
] as const;

export function EnvironmentEditor({ collectionId, envs, onSaved }: { collectionId: string; envs: Environment[]; onSaved: () => void }) {
  const [selected, setSelected] = useState("");
  const env = envs.find((e) => e.id === selected);
  return (
    <section class="coll-envs">
      <h3>Environments</h3>
      <div class="coll-env-tabs">
        {envs.map((e) => (
          <button type="button" class={`btn btn-ghost btn-sm ${e.id === selected ? "is-open" : ""}`} onClick={() => setSelected(e.id)}>
            {e.name}
          </button>
        ))}
        <button type="button" class="btn btn-ghost btn-sm" onClick={() => setSelected("new")} data-testid="new-env">
          New environment
        </button>
      </div>
      {(env || selected === "new") && (
        <EnvForm
          key={selected}
          collectionId={collectionId}
          env={env}
          onSaved={(id) => {
            setSelected(id);
            onSaved();
          }}
        />
      )}
    </section>
  );
}

function EnvForm({ collectionId, env, onSaved }: { collectionId: string; env?: Environment; onSaved: (id: string) => void }) {
  const [name, setName] = useState(env?.name ?? "");
  const [vars, setVars] = useState<Variable[]>(env ? [...env.variables] : []);
  const [auth, setAuth] = useState<AuthFields>(() => Object.fromEntries(FIELDS.map((k) => [k, env?.auth?.[k] ?? ""])) as AuthFields);
  const setV = (i: number, patch: Partial<Variable>) => setVars(vars.map((v, j) => (j === i ? { ...v, ...patch } : v)));
  const text = (key: keyof AuthFields, label: string, secret = false) => (
    <label class="coll-field">
      <span>
        {label}
        {secret && env?.auth?.secretsSet.includes(key) ? " (stored; leave empty to keep)" : ""}
      </span>
      <input type={(secret ? "password" : "text") as "text"} value={auth[key]} onInput={(e) => setAuth({ ...auth, [key]: (e.target as HTMLInputElement).value })} />
    </label>
  );
  const save = async (e: Event) => {
    e.preventDefault();
    try {
      const saved = await collections.saveEnvironment({
        environment: {
          id: env?.id ?? "",
          collectionId,
          name,
          variables: vars.map((v) => ({ name: v.name, value: v.value, secret: v.secret })),
          auth,
        },
      });
      toast(`Saved ${saved.name}`, "success");
      onSaved(saved.id);
    } catch (err) {
      toast(errorText(err), "error", 6000);
    }
  };
  const kind = auth.kind;
  return (
    <form class="coll-editor" onSubmit={save} data-testid="env-editor">
      <label class="coll-field">
        <span>Name</span>
        <input aria-label="Environment name" value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
      </label>
      <fieldset>
        <legend>Variables</legend>
        {vars.map((v, i) => (
          <div class="coll-assert" data-testid="variable-row">
            <input aria-label="Variable name" value={v.name} onInput={(e) => setV(i, { name: (e.target as HTMLInputElement).value })} />
            <input
              aria-label="Variable value"
              type={(v.secret ? "password" : "text") as "text"}
              placeholder={v.secret && v.valueSet ? "•••• stored (leave empty to keep)" : ""}
              value={v.value}
              onInput={(e) => setV(i, { value: (e.target as HTMLInputElement).value })}
            />
            <label>
              <input type="checkbox" checked={v.secret} onChange={(e) => setV(i, { secret: (e.target as HTMLInputElement).checked })} /> secret
            </label>
            <button type="button" class="btn btn-ghost btn-sm" aria-label="Remove variable" onClick={() => setVars(vars.filter((_, j) => j !== i))}>
              ×
            </button>
          </div>
        ))}
        <button type="button" class="btn btn-ghost btn-sm" onClick={() => setVars([...vars, { name: "", value: "", secret: false, valueSet: false } as Variable])} data-testid="add-variable">
          Add variable
        </button>
      </fieldset>
      <fieldset>
        <legend>Auth</legend>
        <select aria-label="Auth helper" value={kind} onChange={(e) => setAuth({ ...auth, kind: (e.target as HTMLSelectElement).value })}>
          {AUTH.map(([k, label]) => (
            <option value={k}>{label}</option>
          ))}
        </select>
        {kind === "bearer" && text("token", "Token", true)}
        {kind === "basic" && [text("username", "User name"), text("password", "Password", true)]}
        {kind === "api_key" && [text("headerName", "Header"), text("apiKey", "Key", true)]}
        {kind === "oauth2_client_credentials" && [
          text("tokenUrl", "Token URL"),
          text("clientId", "Client id"),
          text("clientSecret", "Client secret", true),
          text("scopes", "Scopes"),
          text("audience", "Audience"),
        ]}
      </fieldset>
      <button type="submit" class="btn btn-primary btn-sm" data-testid="save-env">
        Save environment
      </button>
    </form>
  );
}
