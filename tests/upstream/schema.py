"""Compile tests/upstream/proto at test time into a DescriptorPool and message classes."""

from __future__ import annotations

import functools
import importlib.resources
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

PROTO_DIR = Path(__file__).parent / "proto"
PROTO_FILE = "testsvc/v1/test.proto"
SERVICE = "testsvc.v1.TestService"
_WKT_DIR = Path(str(importlib.resources.files("grpc_tools") / "_proto"))


@dataclass(frozen=True, slots=True, kw_only=True)
class TestSchema:
    """The compiled test service: pool, descriptor set bytes and message classes."""

    __test__ = False

    pool: descriptor_pool.DescriptorPool
    descriptor_set: bytes
    proto_dir: Path
    service: str = SERVICE

    def cls(self, name: str) -> type[Message]:
        """The message class for a name relative to testsvc.v1 or fully qualified."""
        full = name if "." in name else f"testsvc.v1.{name}"
        return message_factory.GetMessageClass(self.pool.FindMessageTypeByName(full))

    def method(self, name: str) -> MethodDescriptor:
        """A method of the schema's service."""
        return self.pool.FindServiceByName(self.service).methods_by_name[name]


@functools.cache
def load_schema() -> TestSchema:
    """Compile the test proto once per process (protoc runs in a child process)."""
    return compile_schema(PROTO_DIR, PROTO_FILE, SERVICE)


def compile_schema(proto_dir: Path, proto_file: str, service: str) -> TestSchema:
    """Compile one .proto (with its imports) into a pool and descriptor set bytes."""
    with tempfile.TemporaryDirectory(prefix="testsvc-") as tmp:
        out = Path(tmp) / "set.binpb"
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                f"-I{proto_dir}",
                f"-I{_WKT_DIR}",
                "--include_imports",
                f"--descriptor_set_out={out}",
                proto_file,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"protoc failed: {proc.stderr}")
        data = out.read_bytes()
    fds = descriptor_pb2.FileDescriptorSet.FromString(data)
    pool = descriptor_pool.DescriptorPool()
    for fd in fds.file:
        pool.Add(fd)
    return TestSchema(pool=pool, descriptor_set=data, proto_dir=proto_dir, service=service)
