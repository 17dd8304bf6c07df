// The CollectionService client (same transport as the catalog's: session and sign-in
// headers), and what the page remembers: the open collection and its environment.
import { createClient } from "@connectrpc/connect";
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
