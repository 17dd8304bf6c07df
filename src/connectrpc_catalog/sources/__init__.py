"""Schema sources: one module per kind, each a `core.Source` (`async def load(ctx, given)`).

- `files`: a folder, a `.proto` file or a descriptor-set file on the catalog's disk
  (`protoPath`, `--proto`, `--descriptor-set`)
- `upload`: `.proto` files sent in the request (`protoFiles`); every compile goes through it
- `descriptor_set`: a serialized FileDescriptorSet sent in the request (`descriptorSet`);
  every source ends in its `load_set`
- `buf`: Buf modules, workspaces and BSR references (`bufModule`), built with the Buf CLI
- `git`: Git repositories (`protoRepo`), checked out shallowly and loaded as a folder
- `reflection`: gRPC server reflection (`reflectionEndpoint`)

Beneath them: `core` (limits, `LoadError`, the `Context`, the memo, name rules),
`disk` (bounded reading of files and folders), `run` (the subprocess runner buf and git
share) and `compiler` (the protoc worker process). Arrows point down only; no module here
imports the dispatch table (`connectrpc_catalog.loading`), which lists them all.

Kept free of imports: the compiler's worker process imports this package.
"""
