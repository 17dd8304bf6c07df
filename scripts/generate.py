"""Regenerate the catalog.v1 Python code from proto/ (run: python scripts/generate.py).

Uses the protoc that grpcio-tools ships plus the protoc-gen-py and protoc-gen-connectrpc
plugins, all in-process; `--check` compares instead of writing (used by the tests).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "src" / "connectrpc_catalog" / "gen"
PROTOS = sorted(str(p.relative_to(PROTO_DIR)) for p in (PROTO_DIR / "catalog").rglob("*.proto"))
"""Every .proto of the catalog API (catalog/v1/catalog.proto, collections.proto, ...)."""


def _plugin(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if not found:
        raise SystemExit(f"{name} not found: pip install -e '.[dev]'")
    return found


def generate(out: Path) -> None:
    """Write the generated package for PROTOS into out."""
    cmd = [
        sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO_DIR}",
        f"--plugin=protoc-gen-py={_plugin('protoc-gen-py')}",
        f"--plugin=protoc-gen-connectrpc={_plugin('protoc-gen-connectrpc')}",
        f"--py_out={out}", f"--connectrpc_out={out}", *PROTOS,
    ]
    subprocess.run(cmd, check=True)
    # The catalog reflects itself from this set: it keeps the .proto comments.
    for proto in PROTOS:
        out_set = out / Path(proto).with_suffix(".binpb")
        subprocess.run(
            [
                sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO_DIR}",
                "--include_source_info", f"--descriptor_set_out={out_set}", proto,
            ],
            check=True,
        )


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.suffix in (".py", ".binpb")
    }


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh = _files(Path(tmp))
        if "--check" in argv:
            if fresh != _files(OUT_DIR):
                print("generated code is stale: run python scripts/generate.py", file=sys.stderr)
                return 1
            return 0
        if OUT_DIR.exists():
            shutil.rmtree(OUT_DIR)
        shutil.copytree(tmp, OUT_DIR)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
