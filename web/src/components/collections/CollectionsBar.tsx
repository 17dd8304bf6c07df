// Saved requests in the page: a bar that is always visible (the open collection, the
// current environment, a Collections button), and the panel it opens.
import { useEffect, useState } from "preact/hooks";
import { errorText } from "../../api/client";
import type { Collection, Environment } from "../../gen/catalog/v1/collections_pb";
import { toast } from "../../state/store";
import { collections, linkedCollection, setChoice, useChoice } from "./api";
import { CollectionView } from "./CollectionView";
import "./collections.css";

export function CollectionsBar() {
  const choice = useChoice();
  const [open, setOpen] = useState(false);
  const [list, setList] = useState<Collection[]>([]);
  const [teams, setTeams] = useState<string[]>([]);
  const [envs, setEnvs] = useState<Environment[]>([]);

  const refresh = async () => {
    try {
      const r = await collections.listCollections({});
      setList(r.collections);
      setTeams(r.teams);
    } catch (e) {
      toast(`Collections: ${errorText(e)}`, "error", 6000);
    }
  };

  useEffect(() => {
    const linked = linkedCollection();
    if (linked) {
      setChoice({ collection: linked });
      setOpen(true);
    }
    void refresh();
  }, []);

  useEffect(() => {
    if (!choice.collection) {
      setEnvs([]);
      return;
    }
    collections
      .getCollection({ id: choice.collection })
      .then((r) => setEnvs(r.environments))
      .catch((e) => {
        setEnvs([]);
        if (choice.collection === linkedCollection()) toast(`The linked collection: ${errorText(e)}`, "error", 8000);
      });
  }, [choice.collection, open, list]);

  const current = list.find((c) => c.id === choice.collection);
  const env = choice.env[choice.collection] ?? "";
  return (
    <div class="coll-bar" role="region" aria-label="Saved requests" data-testid="collections-bar">
      <button type="button" class="btn btn-ghost btn-sm" aria-expanded={open} onClick={() => setOpen(!open)} data-testid="collections-toggle">
        Collections
      </button>
      <span class="coll-bar-name">{current ? current.name : "no collection open"}</span>
      <label class="coll-env">
        <span>Environment</span>
        <select
          data-testid="env-switcher"
          value={env}
          disabled={!current}
          onChange={(e) => setChoice({ env: { ...choice.env, [choice.collection]: (e.target as HTMLSelectElement).value } })}
        >
          <option value="">none</option>
          {envs.map((x) => (
            <option value={x.name}>{x.name}</option>
          ))}
        </select>
      </label>
      {open && (
        <div class="coll-panel" role="dialog" aria-label="Collections">
          <CollectionList list={list} teams={teams} onChanged={refresh} />
          {current && <CollectionView key={current.id} collection={current} env={env} onChanged={refresh} />}
        </div>
      )}
    </div>
  );
}

function CollectionList({ list, teams, onChanged }: { list: Collection[]; teams: string[]; onChanged: () => Promise<void> }) {
  const choice = useChoice();
  const [name, setName] = useState("");
  const [team, setTeam] = useState("");
  const create = async (e: Event) => {
    e.preventDefault();
    try {
      const made = await collections.saveCollection({ name, team });
      setName("");
      setChoice({ collection: made.id });
      await onChanged();
    } catch (err) {
      toast(errorText(err), "error", 6000);
    }
  };
  return (
    <section class="coll-list">
      <h2>Collections</h2>
      <ul>
        {list.map((c) => (
          <li>
            <button type="button" class={`coll-item ${c.id === choice.collection ? "is-open" : ""}`} onClick={() => setChoice({ collection: c.id })}>
              {c.name} <span class="muted">{c.personal ? "personal" : c.team === "*" ? "everyone" : `team ${c.team}`} · {c.requestCount}</span>
            </button>
          </li>
        ))}
      </ul>
      <form class="coll-new" onSubmit={create}>
        <input aria-label="New collection name" placeholder="New collection" value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        <select aria-label="Shared with" value={team} onChange={(e) => setTeam((e.target as HTMLSelectElement).value)}>
          <option value="">personal</option>
          {teams.map((t) => (
            <option value={t}>{t === "*" ? "everyone" : `team ${t}`}</option>
          ))}
        </select>
        <button type="submit" class="btn btn-primary btn-sm" disabled={!name.trim()}>
          Create
        </button>
      </form>
    </section>
  );
}
