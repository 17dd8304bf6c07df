"""Upstream servers for the invocation tests: one test service over grpcio and connectrpc."""
