"""The catalog.v1 CollectionService handlers: saved requests (see saved/).

Thin: each handler finds the caller (`current_identity`), hands the request to the
store, and translates. Runs happen in the caller's session, so they see its schemas
and go through its invoker (the access policy and the per-identity limits included).
"""

from __future__ import annotations

import asyncio
from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from ..gen.catalog.v1 import collections_connect
from ..gen.catalog.v1 import collections_pb as pb
from ..identity import current_identity
from ..invocation import CallLimits
from ..policy import AccessPolicy
from ..problems import Code as ProblemCode
from ..problems import RequestError
from ..registry import Registry
from ..saved.authhelpers import TokenCache
from ..saved.files import export_files, import_files
from ..saved.paging import page_size
from ..saved.run import Runner
from ..saved.store import Opener
from ..transports import Invoker
from .sessions import current_session

__all__ = ["CollectionService"]

Ctx = RequestContext[Any, Any]

MAX_RUN = 500
"""The most saved requests one RunRequests runs (one after the other)."""


class CollectionService(collections_connect.CollectionService):
    """Implements catalog.v1.CollectionService on top of `saved.store.Store`."""

    def __init__(
        self,
        *,
        opener: Opener,
        call_limits: CallLimits,
        policy: AccessPolicy | None = None,
        tokens: TokenCache | None = None,
        max_run_seconds: float = 300.0,
    ) -> None:
        self.opener = opener
        self.max_run_seconds = max_run_seconds
        self.call_limits = call_limits
        self.policy = policy
        self.tokens = tokens or TokenCache()

    async def list_collections(
        self, request: pb.ListCollectionsRequest, ctx: Ctx
    ) -> pb.ListCollectionsResponse:
        """The caller's collections (a page of them when asked) and the teams it may
        share with."""
        size = page_size(request.page_size, request.page_token)
        store, who = await self.opener.get(), current_identity()
        found, following = await store.collections_page(who, size, request.page_token)
        return pb.ListCollectionsResponse(
            collections=found, teams=store.teams(who), next_page_token=following
        )

    async def get_collection(
        self, request: pb.GetCollectionRequest, ctx: Ctx
    ) -> pb.GetCollectionResponse:
        """One collection with its requests (a page of them when asked) and
        environments (secrets masked; on the first page)."""
        size = page_size(request.page_size, request.page_token)
        store = await self.opener.get()
        info, requests, envs, following = await store.collection_page(
            current_identity(), request.id, size, request.page_token
        )
        return pb.GetCollectionResponse(
            collection=info, requests=requests, environments=envs, next_page_token=following
        )

    async def save_collection(self, request: pb.SaveCollectionRequest, ctx: Ctx) -> pb.Collection:
        """Create or update a collection."""
        return await (await self.opener.get()).save_collection(current_identity(), request)

    async def delete_collection(
        self, request: pb.DeleteCollectionRequest, ctx: Ctx
    ) -> pb.DeleteCollectionResponse:
        """Delete a collection and all it holds."""
        store = await self.opener.get()
        return pb.DeleteCollectionResponse(
            deleted=await store.delete_collection(current_identity(), request.id)
        )

    async def save_request(self, request: pb.SaveRequestRequest, ctx: Ctx) -> pb.SavedRequest:
        """Save a request (new or an update)."""
        store = await self.opener.get()
        return await store.save_request(current_identity(), request.request or pb.SavedRequest())

    async def delete_request(
        self, request: pb.DeleteRequestRequest, ctx: Ctx
    ) -> pb.DeleteRequestResponse:
        """Delete a saved request."""
        store = await self.opener.get()
        return pb.DeleteRequestResponse(
            deleted=await store.delete_request(current_identity(), request.id)
        )

    async def duplicate_request(
        self, request: pb.DuplicateRequestRequest, ctx: Ctx
    ) -> pb.SavedRequest:
        """Copy a saved request."""
        return await (await self.opener.get()).duplicate_request(current_identity(), request.id)

    async def reorder_requests(
        self, request: pb.ReorderRequestsRequest, ctx: Ctx
    ) -> pb.ReorderRequestsResponse:
        """Put a collection's requests in a new order."""
        store = await self.opener.get()
        ordered = await store.reorder(
            current_identity(), request.collection_id, list(request.request_ids)
        )
        return pb.ReorderRequestsResponse(requests=ordered)

    async def save_environment(
        self, request: pb.SaveEnvironmentRequest, ctx: Ctx
    ) -> pb.Environment:
        """Create or update an environment."""
        store = await self.opener.get()
        return await store.save_environment(
            current_identity(), request.environment or pb.Environment()
        )

    async def delete_environment(
        self, request: pb.DeleteEnvironmentRequest, ctx: Ctx
    ) -> pb.DeleteEnvironmentResponse:
        """Delete an environment."""
        store = await self.opener.get()
        return pb.DeleteEnvironmentResponse(
            deleted=await store.delete_environment(current_identity(), request.id)
        )

    async def run_requests(
        self, request: pb.RunRequestsRequest, ctx: Ctx
    ) -> pb.RunRequestsResponse:
        """Run saved requests in the caller's session and check their assertions."""
        store, who = await self.opener.get(), current_identity()
        cid, requests = await store.requests_for_run(
            who, request.collection_id, list(request.request_ids)
        )
        if len(requests) > MAX_RUN:
            raise RequestError(
                f"the run holds {len(requests)} requests; at most {MAX_RUN} run in one "
                "RunRequests (name some with requestIds, or use `connectrpc-catalog run`)",
                code=ProblemCode.RESOURCE_EXHAUSTED,
                field="requestIds",
            )
        env = await store.resolve_environment(who, cid, request.environment)
        state = current_session()
        state.used = True  # it holds connections now
        policy = self.policy

        async def check(host: str, port: int) -> str | None:
            """The address to dial (the one checked), or None when any target goes."""
            return await policy.check_target(host, port, who) if policy is not None else None

        registry, invoker = state.registry, state.invoker
        if not isinstance(registry, Registry) or not isinstance(invoker, Invoker):
            raise ConnectError(Code.INTERNAL, "session has no registry")  # pragma: no cover
        runner = Runner(
            registry=registry,
            invoker=invoker,
            limits=self.call_limits,
            tokens=self.tokens,
            check_target=check,
            max_run_seconds=self.max_run_seconds,
        )
        with state.hold("streams", self.call_limits.max_streams):
            return await runner.run_all(requests, env)

    async def export_collection(
        self, request: pb.ExportCollectionRequest, ctx: Ctx
    ) -> pb.ExportCollectionResponse:
        """A collection as files (secrets left out)."""
        store = await self.opener.get()
        info, requests, envs = await store.get_collection(current_identity(), request.id)
        files = await asyncio.to_thread(export_files, info, requests, envs)  # big JSON
        return pb.ExportCollectionResponse(files=files)

    async def import_collection(
        self, request: pb.ImportCollectionRequest, ctx: Ctx
    ) -> pb.Collection:
        """A new collection from exported files."""
        store = await self.opener.get()
        # up to 16 MiB of JSON parsed and checked: in a thread, not on the event loop
        imported = await asyncio.to_thread(import_files, list(request.files))
        return await store.import_collection(current_identity(), request.team, imported)
