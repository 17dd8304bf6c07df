"""Test helper: compile .proto sources with grpc_tools and load them into a fresh pool."""

from __future__ import annotations

import importlib.resources
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool

WKT_DIR = Path(str(importlib.resources.files("grpc_tools") / "_proto"))


def compile_protos(
    tmp_path: Path, sources: Mapping[str, str]
) -> tuple[descriptor_pb2.FileDescriptorSet, descriptor_pool.DescriptorPool]:
    """Write ``sources`` (relative path -> text) under ``tmp_path`` and compile them.

    Returns the descriptor set (imports and source info included, in dependency
    order) and a new ``DescriptorPool`` holding every file of the set.
    """
    src_dir = tmp_path / "protos"
    for rel, text in sources.items():
        target = src_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    out = tmp_path / "descriptors.binpb"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{src_dir}",
            f"-I{WKT_DIR}",
            "--include_imports",
            "--include_source_info",
            f"--descriptor_set_out={out}",
            *sources,
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=src_dir,
    )
    if result.returncode != 0:
        raise RuntimeError(f"protoc failed ({result.returncode}): {result.stderr}")
    fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file_proto in fds.file:
        pool.Add(file_proto)
    return fds, pool
