// Turning dropped or picked files into a LoadProtos request.

export interface PickedFile {
  /** Path relative to the import root, e.g. "acme/v1/api.proto". */
  path: string;
  file: File;
}

const DESCRIPTOR_EXT = /\.(binpb|pb|protoset|desc|bin)$/i;

export function isDescriptorSet(name: string): boolean {
  return DESCRIPTOR_EXT.test(name);
}

/** Reads everything dropped: files, and folders recursively (via webkitGetAsEntry). */
export async function collectDropped(dt: DataTransfer): Promise<{ files: PickedFile[]; root: string }> {
  const entries: FileSystemEntry[] = [];
  for (const item of Array.from(dt.items)) {
    if (item.kind !== "file") continue;
    const entry = item.webkitGetAsEntry?.();
    if (entry) entries.push(entry);
  }
  if (!entries.length) {
    const files = Array.from(dt.files).map((f) => ({ path: f.name, file: f }));
    return { files, root: files[0]?.file.name ?? "" };
  }
  const out: PickedFile[] = [];
  for (const e of entries) await walk(e, out);
  // One folder dropped: it is the import root, as with a folder path on the server.
  const singleDir = entries.length === 1 && entries[0].isDirectory;
  const root = singleDir ? entries[0].name : entries[0].name;
  const files = out.map(({ path, file }) => ({
    path: singleDir ? path.split("/").slice(2).join("/") : path.replace(/^\//, ""),
    file,
  }));
  return { files, root };
}

async function walk(entry: FileSystemEntry, out: PickedFile[]): Promise<void> {
  if (entry.isFile) {
    const file = await new Promise<File>((resolve, reject) => (entry as FileSystemFileEntry).file(resolve, reject));
    out.push({ path: entry.fullPath, file });
    return;
  }
  if (entry.isDirectory) {
    const reader = (entry as FileSystemDirectoryEntry).createReader();
    for (;;) {
      const batch = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
      if (!batch.length) break;
      for (const child of batch) {
        if (child.name.startsWith(".") || child.name === "node_modules") continue;
        await walk(child, out);
      }
    }
  }
}

/** Files from an <input type=file> (webkitdirectory gives webkitRelativePath). */
export function collectPicked(list: FileList): { files: PickedFile[]; root: string } {
  const all = Array.from(list);
  const rel = all.map((f) => f.webkitRelativePath || f.name);
  const folder = all.length > 0 && rel.every((p) => p.includes("/")) ? rel[0].split("/")[0] : "";
  const files = all.map((file, i) => ({
    path: folder ? rel[i].split("/").slice(1).join("/") : rel[i],
    file,
  }));
  return { files, root: folder || all[0]?.name || "" };
}

export type UploadPlan =
  | { kind: "protos"; files: Record<string, string>; count: number; skipped: number }
  | { kind: "descriptor"; name: string; bytes: Uint8Array }
  | { kind: "error"; message: string };

const MAX_BYTES = 32 * 1024 * 1024;

export async function planUpload(files: PickedFile[]): Promise<UploadPlan> {
  const protos = files.filter((f) => f.path.toLowerCase().endsWith(".proto"));
  const sets = files.filter((f) => isDescriptorSet(f.file.name));
  if (!protos.length && sets.length === 1) {
    const buf = new Uint8Array(await sets[0].file.arrayBuffer());
    return { kind: "descriptor", name: sets[0].file.name, bytes: buf };
  }
  if (!protos.length && sets.length > 1) {
    return { kind: "error", message: "Drop one descriptor set at a time (or .proto files)." };
  }
  if (!protos.length) {
    return {
      kind: "error",
      message: "No .proto files found. Drop .proto files, a folder of them, or a descriptor set (.binpb, .pb, .protoset, .desc).",
    };
  }
  const total = protos.reduce((n, f) => n + f.file.size, 0);
  if (total > MAX_BYTES) return { kind: "error", message: `The .proto files add up to ${(total / 1048576).toFixed(1)} MB; the upload limit here is 32 MB.` };
  const out: Record<string, string> = {};
  for (const f of protos) out[f.path] = await f.file.text();
  return { kind: "protos", files: out, count: protos.length, skipped: files.length - protos.length };
}
