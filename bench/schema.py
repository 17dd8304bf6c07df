"""GetServiceSchema on a large schema: time and response size, next to building the Schema.

The schema is built with descriptor_pb2 (no protoc): FILES files in packages of 10 files,
10 messages per file (2 scalars, an enum of the file, a reference to a message of the
previous file, a repeated reference to a sibling). Package 0 is a common package; the
first file of every other package refers to it, so one package's service reaches its
own 100 messages and the common 100, across 20 files. Two services are measured:

- `Service<k>` of the last package: one API's service in a 500-file schema (the target);
- `AllService` (50 methods, one per package): reaches all 5,000 messages, the worst case.

Measured in one run:

- baseline: constructing the `Schema` (descriptor pool, comments) from the files, in
  process, the same work as a LoadProtos of this set;
- against a catalog subprocess over Connect JSON (HTTP/1.1): GetServiceSchema's first
  call on a schema (built in a worker thread) and its later calls (cached), medians, and
  the size of the response (JSON; binary for comparison).

Target on a 500-file schema: GetServiceSchema <= 100 ms and <= 2 MB.

    .venv/bin/python bench/schema.py [--quick]
"""

from __future__ import annotations

import base64
import statistics
import sys
import threading
import time

import httpx
from common import catalog
from google.protobuf import descriptor_pb2

from connectrpc_catalog.descriptors import Schema
from connectrpc_catalog.gen.catalog.v1 import catalog_pb

_F = descriptor_pb2.FieldDescriptorProto
PER_FILE = 10
PER_PACKAGE = 10
API = "/catalog.v1.CatalogService/"


def package_of(k: int, tag: str) -> str:
    return f"bench.{tag}.common.v1" if k == 0 else f"bench.{tag}.p{k}.v1"


def path_of(k: int, f: int, tag: str) -> str:
    return f"{package_of(k, tag).replace('.', '/')}/f{f}.proto"


def add_message(fd: descriptor_pb2.FileDescriptorProto, f: int, j: int, parent: str) -> None:
    pkg = fd.package
    msg = fd.message_type.add(name=f"F{f}M{j}")
    msg.field.add(name="display_name", number=1, type=_F.TYPE_STRING, json_name="displayName")
    msg.field.add(name="id", number=2, type=_F.TYPE_INT64, json_name="id")
    msg.field.add(
        name="status",
        number=3,
        type=_F.TYPE_ENUM,
        type_name=f".{pkg}.Status{f}",
        json_name="status",
    )
    if parent:
        msg.field.add(
            name="parent", number=4, type=_F.TYPE_MESSAGE, type_name=parent, json_name="parent"
        )
    msg.field.add(name="related", number=5, type=_F.TYPE_MESSAGE, label=_F.LABEL_REPEATED,
                  type_name=f".{pkg}.F{f}M{(j + 1) % PER_FILE}", json_name="related")  # fmt: skip


def build_file(k: int, f: int, tag: str) -> descriptor_pb2.FileDescriptorProto:
    pkg = package_of(k, tag)
    fd = descriptor_pb2.FileDescriptorProto(name=path_of(k, f, tag), package=pkg, syntax="proto3")
    enum = fd.enum_type.add(name=f"Status{f}")
    for n, name in enumerate(("UNSPECIFIED", "ACTIVE", "RETIRED")):
        enum.value.add(name=f"STATUS{f}_{name}", number=n)
    if f:
        fd.dependency.append(path_of(k, f - 1, tag))
        parent_pkg, parent_file = pkg, f - 1
    elif k:
        fd.dependency.append(path_of(0, PER_PACKAGE - 1, tag))
        parent_pkg, parent_file = package_of(0, tag), PER_PACKAGE - 1
    for j in range(PER_FILE):
        parent = f".{parent_pkg}.F{parent_file}M{j}" if f or k else ""
        add_message(fd, f, j, parent)
    if f == PER_PACKAGE - 1 and k:
        svc = fd.service.add(name=f"Service{k}")
        for j in range(PER_FILE):
            svc.method.add(name=f"Get{j}", input_type=f".{pkg}.F{f}M{j}",
                           output_type=f".{pkg}.F{f}M{(j + 1) % PER_FILE}")  # fmt: skip
    return fd


def build_set(files: int, tag: str = "r0") -> tuple[dict[str, bytes], str, str]:
    """File name -> serialized FileDescriptorProto; the last package's service; AllService."""
    packages = files // PER_PACKAGE
    protos = [build_file(k, f, tag) for k in range(packages) for f in range(PER_PACKAGE)]
    last = protos[-1]
    everything = last.service.add(name="AllService")
    for k in range(packages):
        if k != packages - 1:
            last.dependency.append(path_of(k, PER_PACKAGE - 1, tag))
        root = f".{package_of(k, tag)}.F{PER_PACKAGE - 1}M0"
        everything.method.add(name=f"Get{k}", input_type=root, output_type=root)
    out = {p.name: p.SerializeToString() for p in protos}
    return out, f"{last.package}.Service{packages - 1}", f"{last.package}.AllService"


_SCALARS = {_F.TYPE_STRING: "string", _F.TYPE_INT64: "int64"}


def proto_text(fd: descriptor_pb2.FileDescriptorProto) -> str:
    """The .proto source of a file built by `build_file`, with a comment on everything."""
    out = ['syntax = "proto3";', f"package {fd.package};", ""]
    out += [f'import "{dep}";' for dep in fd.dependency]
    for enum in fd.enum_type:
        out.append(f"// {enum.name} is the status of a file's things.\nenum {enum.name} {{")
        out += [f"  // The {v.name} state.\n  {v.name} = {v.number};" for v in enum.value]
        out.append("}")
    for msg in fd.message_type:
        out.append(f"// {msg.name} is a message of the bench schema.\nmessage {msg.name} {{")
        for f in msg.field:
            kind = _SCALARS.get(f.type) or f.type_name
            many = "repeated " if f.label == _F.LABEL_REPEATED else ""
            out.append(f"  // The {f.name} field.\n  {many}{kind} {f.name} = {f.number};")
        out.append("}")
    for svc in fd.service:
        out.append(f"// {svc.name} serves the package.\nservice {svc.name} {{")
        for m in svc.method:
            out.append(f"  // {m.name} gets one.\n  rpc {m.name}({m.input_type}) returns "
                       f"({m.output_type});")  # fmt: skip
        out.append("}")
    return "\n".join(out) + "\n"


def proto_sources(files: int, tag: str = "r0") -> dict[str, str]:
    """The schema of `build_set` as .proto sources: import path -> text (for protoc)."""
    built, _, _ = build_set(files, tag)
    return {
        name: proto_text(descriptor_pb2.FileDescriptorProto.FromString(data))
        for name, data in built.items()
    }


def descriptor_set(files: dict[str, bytes]) -> bytes:
    fds = descriptor_pb2.FileDescriptorSet()
    for data in files.values():
        fds.file.add().ParseFromString(data)
    return fds.SerializeToString()


def timed(fn: object) -> float:
    t0 = time.perf_counter()
    fn()  # type: ignore[operator]
    return (time.perf_counter() - t0) * 1000


def in_process(files: dict[str, bytes], reps: int) -> float:
    """Median ms of constructing the Schema of `files`."""
    return statistics.median([timed(lambda: Schema(files)) for _ in range(reps)])


def call(
    client: httpx.Client, url: str, method: str, body: object, sid: str = ""
) -> httpx.Response:
    headers = {"content-type": "application/json", **({"x-session-id": sid} if sid else {})}
    r = client.post(url + API + method, json=body, headers=headers)
    r.raise_for_status()
    return r


class Pinger:
    """Another client: GetSession in a loop on its own connection, keeping its slowest."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.longest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=60) as client:
            sid = call(client, self.url, "GetSession", {}).headers["x-session-id"]
            while not self._stop.is_set():
                t0 = time.perf_counter()
                call(client, self.url, "GetSession", {}, sid)
                self.longest = max(self.longest, (time.perf_counter() - t0) * 1000)
                time.sleep(0.001)

    def __enter__(self) -> Pinger:
        self._thread.start()
        time.sleep(0.05)  # its first requests (session, connection) are not measured
        self.longest = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def stall(url: str, client: httpx.Client, sid: str, service: str) -> tuple[float, float]:
    """Another client's longest GetSession while `service`'s schema is first built, and
    over the same time with the catalog idle (the machine's own noise)."""
    with Pinger(url) as busy:
        t0 = time.perf_counter()
        call(client, url, "GetServiceSchema", {"serviceName": service}, sid)
        took = time.perf_counter() - t0
    with Pinger(url) as idle:
        time.sleep(took)
    return busy.longest, idle.longest


def over_http(url: str, files: int, reps: int, warm: int) -> dict[str, dict[str, float]]:
    """Per service: GetServiceSchema first-call and cached-call ms (medians) and sizes."""
    samples: dict[str, dict[str, list[float]]] = {}
    with httpx.Client(timeout=120) as client:
        for rep in range(reps):
            # New content each time: schemas the catalog has never built.
            local, one, every = build_set(files, tag=f"r{rep}")
            data = descriptor_set(local)
            loaded = call(client, url, "LoadProtos",
                          {"descriptorSet": base64.b64encode(data).decode()})  # fmt: skip
            sid = loaded.headers["x-session-id"]
            if rep == 0:  # a fresh schema: the heaviest first build, against another client
                fresh, _, fresh_every = build_set(files, tag="stall")
                sid2 = call(client, url, "LoadProtos",
                            {"descriptorSet": base64.b64encode(descriptor_set(fresh)).decode()}
                            ).headers["x-session-id"]  # fmt: skip
                busy, idle = stall(url, client, sid2, fresh_every)
                samples["stall"] = {"busy": [busy], "idle": [idle]}
            for label, service in (("one package's service", one), ("AllService", every)):
                got = samples.setdefault(label, {"first": [], "cached": []})
                body = {"serviceName": service}
                t0 = time.perf_counter()
                r = call(client, url, "GetServiceSchema", body, sid)
                got["first"].append((time.perf_counter() - t0) * 1000)
                for _ in range(warm):
                    t0 = time.perf_counter()
                    call(client, url, "GetServiceSchema", body, sid)
                    got["cached"].append((time.perf_counter() - t0) * 1000)
                msg = catalog_pb.GetServiceSchemaResponse.from_json(r.text)
                got["json"] = [len(r.content)]
                got["binary"] = [len(msg.to_binary())]
                got["documents"] = [len(msg.message_schemas)]
    return {
        label: {key: statistics.median(values) for key, values in got.items()}
        for label, got in samples.items()
    }


def main() -> int:
    quick = "--quick" in sys.argv[1:]
    files, reps, warm = (100, 2, 5) if quick else (500, 5, 20)
    local, _, _ = build_set(files)
    schema_ms = in_process(local, reps)
    with catalog() as url:
        with httpx.Client(timeout=60) as client:  # warm the server up
            call(client, url, "ListServices", {})
        results = over_http(url, files, reps, warm)
    mib = 1 << 20
    print(f"schema: {files} files, {files * PER_FILE} messages, {files // PER_PACKAGE} packages")
    print(f"Schema construction (baseline, in process): {schema_ms:8.1f} ms")
    met = True
    for label, r in results.items():
        if label == "stall":
            continue
        print(f"GetServiceSchema of {label}: {r['documents']:.0f} documents")
        print(f"  first call (builds):  {r['first']:8.1f} ms")
        print(f"  later calls (cached): {r['cached']:8.1f} ms")
        print(f"  response, JSON:   {r['json'] / mib:6.2f} MiB ({r['json']:,.0f} bytes)")
        print(f"  response, binary: {r['binary'] / mib:6.2f} MiB")
    print(
        f"stall: another client's longest GetSession while AllService's schema is built: "
        f"{results['stall']['busy']:.1f} ms (idle, same time: {results['stall']['idle']:.1f} ms)"
    )
    target = results["one package's service"]
    met = target["first"] <= 100 and target["json"] <= 2_000_000
    if not quick:
        print("target for one package's service (<= 100 ms, <= 2 MB):", "met" if met else "NOT met")
    return 0 if met or quick else 1


if __name__ == "__main__":
    sys.exit(main())
