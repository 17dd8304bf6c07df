// The CollectionService client (same transport as the catalog's: session and sign-in
// headers), and what the page remembers: the open collection and its environment.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { useEffect, useState } from "preact/hooks";
import { transport } from "../../api/client";
import { CollectionService } from "../../gen/catalog/v1/collections_pb";
import { loadJson, saveJson } from "../../lib/storage";

export const collections = createClient(CollectionService, transport);

const KEY = "catalog.collections.v1";

export interface Choice {
  /** The open collection's id ("" for none). */
  collection: string;
  /** The chosen environment per collection (its name). */
  env: Record<string, string>;
}

let choice: Choice = loadJson<Choice>("local", KEY, { collection: "", env: {} });
const listeners = new Set<(c: Choice) => void>();

export function setChoice(patch: Partial<Choice>): void {
  choice = { ...choice, ...patch };
  saveJson("local", KEY, choice);
  for (const fn of listeners) fn(choice);
}

export function useChoice(): Choice {
  const [c, set] = useState(choice);
  useEffect(() => {
    listeners.add(set);
    return () => {
      listeners.delete(set);
    };
  }, []);
  return c;
}

/** A collection's link: `#/?collection=ID` opens it. */
export function collectionLink(id: string): string {
  const url = new URL(window.location.href);
  url.hash = `#/?collection=${encodeURIComponent(id)}`;
  return url.href;
}

/** The collection a link asks for, if any (read once, at start). */
export function linkedCollection(): string {
  const query = window.location.hash.split("?")[1] ?? "";
  return new URLSearchParams(query).get("collection") ?? "";
}

/** How many items one page of the collections list or of a collection's requests asks
for (the server answers at most 1000; a request without a size gets everything). */
export const PAGE = 100;
/** The largest page the server answers. */
export const MAX_PAGE = 1000;

/** The size that reloads what a list already shows in one page (at least PAGE). */
export function reloadSize(shown: number): number {
  return Math.min(MAX_PAGE, Math.max(PAGE, shown));
}

/** `have` with `more` after it, an item already there not shown twice (one that moved
while the list was read may come again). */
export function appendPage<T extends { id: string }>(have: T[], more: T[]): T[] {
  const ids = new Set(have.map((x) => x.id));
  return [...have, ...more.filter((x) => !ids.has(x.id))];
}

/** Whether an error is the server refusing a page token (it outlived its listing, e.g.
the catalog's key changed): start again from the first page. */
export function isStaleToken(e: unknown): boolean {
  return e instanceof ConnectError && e.code === Code.InvalidArgument && e.rawMessage.includes("pageToken");
}

/** Calls `load` when `target` scrolls into view (infinite scroll; the "Load more"
button it watches still works by click and keyboard). */
export function useWhenVisible(target: { current: Element | null }, load: () => void, active: boolean): void {
  useEffect(() => {
    const el = target.current;
    if (!active || !el || typeof IntersectionObserver === "undefined") return;
    const seen = new IntersectionObserver((entries) => {
      if (entries.some((x) => x.isIntersecting)) load();
    });
    seen.observe(el);
    return () => seen.disconnect();
  }, [target.current, active, load]);
}
