// Saved requests in the page: a bar that is always visible (the open collection, the
// current environment, a Collections button), and the panel it opens.
import { useEffect, useRef, useState } from "preact/hooks";
import { errorText } from "../../api/client";
import type { Collection, Environment } from "../../gen/catalog/v1/collections_pb";
import { toast } from "../../state/store";
import { appendPage, collections, isStaleToken, linkedCollection, PAGE, reloadSize, setChoice, useChoice, useWhenVisible } from "./api";
import { CollectionView } from "./CollectionView";
import "./collections.css";

export function CollectionsBar() {
  const choice = useChoice();
  const [open, setOpen] = useState(false);
  const [list, setList] = useState<Collection[]>([]);
  const [next, setNext] = useState("");
  const [teams, setTeams] = useState<string[]>([]);
  const [envs, setEnvs] = useState<Environment[]>([]);
  /** The open collection when it is not among the pages loaded so far. */
  const [opened, setOpened] = useState<Collection | undefined>(undefined);
  const shown = useRef(0);
  const loading = useRef(false);
  const nextRef = useRef("");

  // The list in pages (ListCollections pageSize/pageToken): a reload after a change asks
  // for as many as are shown, so the list does not shrink back to one page.
  const refresh = async () => {
    try {
      const r = await collections.listCollections({ pageSize: reloadSize(shown.current) });
      shown.current = r.collections.length;
      nextRef.current = r.nextPageToken;
      setList(r.collections);
      setNext(r.nextPageToken);
      setTeams(r.teams);
    } catch (e) {
      toast(`Collections: ${errorText(e)}`, "error", 6000);
    }
  };

  const loadMore = async () => {
    const token = nextRef.current;
    if (!token || loading.current) return;
    loading.current = true;
    try {
      const r = await collections.listCollections({ pageSize: PAGE, pageToken: token });
      nextRef.current = r.nextPageToken;
      setList((have) => {
        const all = appendPage(have, r.collections);
        shown.current = all.length;
        return all;
      });
      setNext(r.nextPageToken);
    } catch (e) {
      if (isStaleToken(e)) await refresh();
      else toast(`Collections: ${errorText(e)}`, "error", 6000);
    } finally {
      loading.current = false;
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
      .getCollection({ id: choice.collection, pageSize: 1 }) // its environments come with the first page
      .then((r) => {
        setEnvs(r.environments);
        setOpened(r.collection);
      })
      .catch((e) => {
        setEnvs([]);
        setOpened(undefined);
        if (choice.collection === linkedCollection()) toast(`The linked collection: ${errorText(e)}`, "error", 8000);
      });
  }, [choice.collection, open, list]);

  const current = list.find((c) => c.id === choice.collection) ?? (opened?.id === choice.collection ? opened : undefined);
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
          <CollectionList list={list} more={!!next} onMore={loadMore} teams={teams} onChanged={refresh} />
          {current && <CollectionView key={current.id} collection={current} env={env} onChanged={refresh} />}
        </div>
      )}
    </div>
  );
}

interface ListProps {
  list: Collection[];
  /** Whether more pages follow. */
  more: boolean;
  onMore: () => Promise<void>;
  teams: string[];
  onChanged: () => Promise<void>;
}

function CollectionList({ list, more, onMore, teams, onChanged }: ListProps) {
  const choice = useChoice();
  const end = useRef<HTMLLIElement>(null);
  useWhenVisible(end, () => void onMore(), more);
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
      <ul class="coll-scroll" data-testid="collection-list">
        {list.map((c) => (
          <li>
            <button type="button" class={`coll-item ${c.id === choice.collection ? "is-open" : ""}`} onClick={() => setChoice({ collection: c.id })}>
              {c.name} <span class="muted">{c.personal ? "personal" : c.team === "*" ? "everyone" : `team ${c.team}`} · {c.requestCount}</span>
            </button>
          </li>
        ))}
        {more && (
          <li ref={end}>
            <button type="button" class="btn btn-ghost btn-sm coll-more" onClick={() => void onMore()} data-testid="load-more-collections">
              Load more collections ({list.length} shown)
            </button>
          </li>
        )}
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
