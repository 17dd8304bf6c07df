"""Upstream calls over gRPC, Connect and gRPC-Web, behind one `Transport` interface."""
