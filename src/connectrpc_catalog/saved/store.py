"""The one way to read and write saved requests, with the access rules applied.

Who may see (and change) a collection: its owner for a personal one; anyone in its
team's group for a team one ("*": everyone, on a catalog without sign-in); `OPERATOR`
(the `run` command on a database it was given) sees all. A collection someone may not
see is `not found` to them, as if it did not exist.

Secrets are sealed before they are written and masked in every answer; only
`resolve_environment` opens them, for a run on the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets as _random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from sqlalchemy import and_, case, delete, func, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ..gen.catalog.v1 import collections_pb as pb
from ..identity import Identity
from ..problems import Code, RequestError
from . import db
from .files import Imported
from .models import CollectionRow, EnvironmentRow, RequestRow
from .paging import BadPage, Tokens
from .secrets import MASK, Sealer
from .shapes import (
    AUTH_SECRETS,
    LIMITS,
    TRANSPORTS,
    Invalid,
    TooMany,
    apply_body,
    check_environment,
    check_name,
    request_body,
    transport_name,
)
from .variables import Resolved

__all__ = ["EVERYONE", "OPERATOR", "CollectionPage", "NotFound", "Opener", "Store", "Unavailable"]

_log = logging.getLogger(__name__)

EVERYONE = "*"
OPERATOR = Identity(name="operator", via="operator")
"""Who the `run` command is on a database it was handed: it sees every collection."""


class NotFound(RequestError):
    """No such collection, request or environment that the caller may see."""

    code = Code.NOT_FOUND


class Unavailable(RequestError):
    """The database does not answer."""

    code = Code.UNAVAILABLE


class Conflict(RequestError):
    """A name already taken (an environment's, in its collection)."""

    code = Code.ALREADY_EXISTS


MAX_SAVED_BYTES = 64 << 20
"""--max-saved-bytes-per-identity's default."""
_SIZE = func.coalesce(func.sum(RequestRow.size), 0)
"""The characters the saved requests a query selects hold (JSON bodies and descriptions)."""


_COLLECTIONS = "collections"
"""The page-token scope of ListCollections (GetCollection's: "requests:<id>")."""
CollectionPage = tuple[pb.Collection, list[pb.SavedRequest], list[pb.Environment], str]
"""A collection, a page of its requests, its environments (first page), the next token."""


def _new_id() -> str:
    return _random.token_hex(16)


def _key(after: list[Any], *types: type) -> list[Any]:
    """A page token's sort key, checked against the types it must have (a token signed
    by this catalog has them; anything else is a bad token, never a database error)."""
    if len(after) != len(types) or not all(
        type(v) is t and not (isinstance(v, str) and len(v) > 1000)
        for v, t in zip(after, types, strict=True)
    ):
        raise BadPage(
            "pageToken does not fit this listing: list again from the first page, "
            "without pageToken",
            field="pageToken",
        )
    return after


class Store:
    """Saved requests in one database (see the module's docstring for the rules)."""

    def __init__(
        self,
        engine: AsyncEngine,
        sealer: Sealer,
        *,
        everyone: bool = True,
        clock: Callable[[], float] = time.time,
        max_saved_bytes: int = MAX_SAVED_BYTES,
    ) -> None:
        self.engine = engine
        self.max_saved_bytes = max_saved_bytes
        """The most characters of saved requests (their JSON and descriptions) one
        identity may have written, and one collection may hold (--max-saved-bytes-per-identity)."""
        self.sealer = sealer
        self.everyone = everyone
        """Whether team "*" (everyone) may be used: on a catalog without sign-in."""
        self.clock = clock
        self.tokens = Tokens(sealer.page_key)
        """Page tokens, signed under a key derived from --secret-key (`paging`)."""
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._order_writer = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        """SQLite has one writer: this process's writers of an order queue here rather
        than in SQLite's busy handler, which sleeps up to 100 ms between tries (20 saves
        at once took 2.7x the time of 20 in a row that way)."""

    @classmethod
    async def open(
        cls, url: str, sealer: Sealer, *, everyone: bool = True, max_saved_bytes: int = 0
    ) -> Store:
        """Open the database at `url` and bring its tables up to date."""
        try:
            engine = db.open_engine(url)  # a SQLite file's folder is made here
        except OSError as exc:
            raise Unavailable(
                f"the saved-requests database {db.describe(url)} cannot be opened "
                f"({type(exc).__name__})"
            ) from None
        try:
            await db.upgrade(engine)
        except (OperationalError, DBAPIError, OSError) as exc:
            await engine.dispose()
            raise Unavailable(
                f"the saved-requests database {db.describe(url)} cannot be opened "
                f"({type(getattr(exc, 'orig', exc)).__name__})"
            ) from None
        return cls(
            engine, sealer, everyone=everyone, max_saved_bytes=max_saved_bytes or MAX_SAVED_BYTES
        )

    async def close(self) -> None:
        """Close the database's connections."""
        await self.engine.dispose()

    @contextlib.asynccontextmanager
    async def _session(self, *, order: bool = False) -> AsyncIterator[AsyncSession]:
        """A transaction; `order`: one that writes a collection's order (`_lock_order`)."""
        queue = self._order_writer if order and self._order_writer else contextlib.nullcontext()
        try:
            async with queue, self._sessions() as session, session.begin():
                yield session
        except IntegrityError:
            raise Conflict("that name is taken in this collection", field="name") from None
        except (OperationalError, DBAPIError, OSError) as exc:
            raise Unavailable(
                "the saved-requests database did not answer "
                f"({type(getattr(exc, 'orig', exc)).__name__}); try again"
            ) from None

    # -- access ---------------------------------------------------------------------

    def teams(self, who: Identity) -> list[str]:
        """The teams `who` may share a collection with."""
        return sorted(who.groups) + ([EVERYONE] if self.everyone else [])

    def _visible(self, row: CollectionRow, who: Identity) -> bool:
        if who is OPERATOR:
            return True
        if row.team:
            return row.team in who.groups or (row.team == EVERYONE and self.everyone)
        return row.owner == who.key

    async def _collection(self, s: AsyncSession, who: Identity, cid: str) -> CollectionRow:
        row = await s.get(CollectionRow, cid.strip()) if cid.strip() else None
        if row is None or not self._visible(row, who):
            raise NotFound(f"no collection {cid[:64]!r} that you may see", field="collectionId")
        return row

    async def _lock_order(self, s: AsyncSession, row: CollectionRow) -> None:
        """Hold the collection until the transaction ends, before its positions are read:
        writers of one collection's order go one at a time (a unique position each). One
        statement for both databases: an UPDATE of the collection's row takes its row lock
        on PostgreSQL and the write lock on SQLite (whose driver opens the transaction at
        the first write, so no older snapshot is read from)."""
        row.updated_at = self.clock()
        await s.execute(
            update(CollectionRow)
            .where(CollectionRow.id == row.id)
            .values(updated_at=row.updated_at)
            .execution_options(synchronize_session=False)
        )

    async def _request(self, s: AsyncSession, who: Identity, rid: str) -> RequestRow:
        row = await s.get(RequestRow, rid.strip()) if rid.strip() else None
        if row is None:
            raise NotFound(f"no saved request {rid[:64]!r} that you may see", field="id")
        try:
            await self._collection(s, who, row.collection_id)
        except NotFound:
            raise NotFound(f"no saved request {rid[:64]!r} that you may see", field="id") from None
        return row

    # -- collections ----------------------------------------------------------------

    def _collection_pb(
        self, row: CollectionRow, who: Identity, counts: tuple[int, int]
    ) -> pb.Collection:
        return pb.Collection(
            id=row.id,
            name=row.name,
            description=row.description,
            team=row.team,
            personal=not row.team,
            request_count=counts[0],
            environment_count=counts[1],
        )

    async def _counts(self, s: AsyncSession, cids: Sequence[str]) -> dict[str, tuple[int, int]]:
        if not cids:
            return {}
        reqs = dict(
            (
                await s.execute(
                    select(RequestRow.collection_id, func.count())
                    .where(RequestRow.collection_id.in_(cids))
                    .group_by(RequestRow.collection_id)
                )
            )
            .tuples()
            .all()
        )
        envs = dict(
            (
                await s.execute(
                    select(EnvironmentRow.collection_id, func.count())
                    .where(EnvironmentRow.collection_id.in_(cids))
                    .group_by(EnvironmentRow.collection_id)
                )
            )
            .tuples()
            .all()
        )
        return {c: (reqs.get(c, 0), envs.get(c, 0)) for c in cids}

    async def list_collections(self, who: Identity) -> list[pb.Collection]:
        """The collections `who` may see, personal first, then by name (all of them)."""
        return (await self.collections_page(who, None, ""))[0]

    async def collections_page(
        self, who: Identity, size: int | None, token: str
    ) -> tuple[list[pb.Collection], str]:
        """A page of `size` collections `who` may see (None: all), after the one `token`
        ended at, and the next page's token ("" after the last). Keyset paging: the page
        is the LIMIT of a query that starts after the last item's sort key, so items
        added or removed meanwhile never shift what comes next."""
        # the order: personal ones (0) first, then team ones (1), by name (the
        # database's lower case), then by id
        rank = case((CollectionRow.team == "", 0), else_=1)
        name_key = func.lower(CollectionRow.name)
        query = select(CollectionRow, rank, name_key)
        if who is not OPERATOR:
            teams = [*who.groups, *([EVERYONE] if self.everyone else [])]
            query = query.where(
                ((CollectionRow.team == "") & (CollectionRow.owner == who.key))
                | CollectionRow.team.in_(teams)
            )
        if token:
            team_last, name, cid = _key(self.tokens.read(token, _COLLECTIONS, who), int, str, str)
            query = query.where(
                or_(
                    rank > team_last,
                    and_(
                        rank == team_last,
                        or_(name_key > name, and_(name_key == name, CollectionRow.id > cid)),
                    ),
                )
            )
        query = query.order_by(rank, name_key, CollectionRow.id)
        if size is not None:
            query = query.limit(size + 1)  # one more: is there a next page?
        async with self._session() as s:
            found = (await s.execute(query)).tuples().all()
            rows = found[:size] if size is not None else found
            counts = await self._counts(s, [r.id for r, _, _ in rows])
        out = [self._collection_pb(r, who, counts[r.id]) for r, _, _ in rows]
        if size is None or len(found) <= size:
            return out, ""
        last, team_last, name = rows[-1]
        return out, self.tokens.make(_COLLECTIONS, who, [int(team_last), str(name), last.id])

    async def save_collection(self, who: Identity, req: pb.SaveCollectionRequest) -> pb.Collection:
        """Create a collection (`req.id` empty) or rename/redescribe one."""
        async with self._session() as s:
            return await self._save_collection(s, who, req)

    async def _save_collection(
        self, s: AsyncSession, who: Identity, req: pb.SaveCollectionRequest
    ) -> pb.Collection:
        name = check_name(req.name, "name")
        description = req.description
        if len(description) > LIMITS.description:
            raise Invalid(
                f"description: at most {LIMITS.description} characters", field="description"
            )
        now = self.clock()
        if req.id:
            row = await self._collection(s, who, req.id)
            if req.team and req.team != row.team:
                raise Invalid("a collection's team is fixed once it is created", field="team")
            row.name, row.description, row.updated_at = name, description, now
        else:
            team = req.team.strip()
            if team and team not in self.teams(who):
                raise RequestError(
                    f"you are not in the group {team[:100]!r}: share with one of "
                    f"{', '.join(self.teams(who)) or 'your groups (you have none)'}",
                    code=Code.PERMISSION_DENIED,
                    field="team",
                )
            owned = (
                await s.scalar(
                    select(func.count())
                    .select_from(CollectionRow)
                    .where(
                        CollectionRow.owner == (who.key if not team else ""),
                        CollectionRow.team == team,
                    )
                )
                or 0
            )
            if owned >= LIMITS.collections_per_owner:
                raise TooMany(
                    f"at most {LIMITS.collections_per_owner} collections per person or team"
                )
            row = CollectionRow(
                id=_new_id(),
                name=name,
                description=description,
                owner="" if team else who.key,
                team=team,
                created_by=who.key,
                created_at=now,
                updated_at=now,
            )
            s.add(row)
        counts = (await self._counts(s, [row.id])).get(row.id, (0, 0))
        return self._collection_pb(row, who, counts)

    async def delete_collection(self, who: Identity, cid: str) -> bool:
        """Delete a collection with everything in it."""
        async with self._session() as s:
            row = await self._collection(s, who, cid)
            for model in (RequestRow, EnvironmentRow):  # children first, on every database
                await s.execute(delete(model).where(model.collection_id == row.id))
            await s.execute(delete(CollectionRow).where(CollectionRow.id == row.id))
        return True

    async def get_collection(
        self, who: Identity, cid: str
    ) -> tuple[pb.Collection, list[pb.SavedRequest], list[pb.Environment]]:
        """A collection, all its requests in order and its environments (masked), read in
        one query (export and runs want one consistent order)."""
        info, requests, environments, _ = await self.collection_page(who, cid, None, "")
        return info, requests, environments

    async def collection_page(
        self, who: Identity, cid: str, size: int | None, token: str
    ) -> CollectionPage:
        """A collection, a page of `size` of its requests (None: all) after where `token`
        ended, its environments (on the first page, without `token`) and the next page's
        token ("" after the last).

        Keyset paging over (position, id), continued after the last item of the previous
        page *where that item is now*: a reorder renumbers positions (a request moved to
        the top pushes every other one down by one), so continuing after the old number
        would repeat or skip requests that did not move. Only when that request is gone
        (deleted or moved to another collection) does its old position count."""
        async with self._session() as s:
            row = await self._collection(s, who, cid)  # the access rules, on every page
            scope = f"requests:{row.id}"
            query = select(RequestRow).where(RequestRow.collection_id == row.id)
            if token:
                position, last = _key(self.tokens.read(token, scope, who), int, str)
                now = (
                    select(RequestRow.position)
                    .where(RequestRow.id == last, RequestRow.collection_id == row.id)
                    .scalar_subquery()
                )
                at = func.coalesce(now, position)
                query = query.where(
                    or_(
                        RequestRow.position > at,
                        and_(RequestRow.position == at, RequestRow.id > last),
                    )
                )
            query = query.order_by(RequestRow.position, RequestRow.id)
            if size is not None:
                query = query.limit(size + 1)  # one more: is there a next page?
            found = list((await s.scalars(query)).all())
            reqs = found[:size] if size is not None else found
            envs: Sequence[EnvironmentRow] = []
            if not token:
                envs = (
                    await s.scalars(
                        select(EnvironmentRow)
                        .where(EnvironmentRow.collection_id == row.id)
                        .order_by(EnvironmentRow.name)
                    )
                ).all()
            if size is None:
                counts = (len(reqs), len(envs))
            else:
                counts = (await self._counts(s, [row.id]))[row.id]
            info = self._collection_pb(row, who, counts)
        # bodies of up to 2,000 requests and 50 environments: parsed in a thread
        requests, environments = await asyncio.to_thread(_messages, reqs, envs)
        following = ""
        if size is not None and len(found) > size:
            following = self.tokens.make(scope, who, [reqs[-1].position, reqs[-1].id])
        return info, requests, environments, following

    # -- requests -------------------------------------------------------------------

    async def _requests(self, s: AsyncSession, cid: str) -> list[RequestRow]:
        query = select(RequestRow).where(RequestRow.collection_id == cid)
        return list((await s.scalars(query.order_by(RequestRow.position, RequestRow.id))).all())

    async def save_request(self, who: Identity, req: pb.SavedRequest) -> pb.SavedRequest:
        """Save a request: new (appended to its collection) or an update (it may move to
        another collection that `who` may see, at its end)."""
        async with self._session(order=True) as s:
            return await self._save_request(s, who, req)

    async def _save_request(
        self, s: AsyncSession, who: Identity, req: pb.SavedRequest
    ) -> pb.SavedRequest:
        name = check_name(req.name, "name")
        body = json.dumps(request_body(req), sort_keys=True, ensure_ascii=False)
        target = await self._collection(s, who, req.collection_id)
        row = await self._request(s, who, req.id) if req.id else None
        size = len(body) + len(req.description)
        await self._room(s, who, target.id, size, row.id if row is not None else "")
        if row is None or row.collection_id != target.id:
            await self._lock_order(s, target)
            count = (
                await s.scalar(
                    select(func.count())
                    .select_from(RequestRow)
                    .where(RequestRow.collection_id == target.id)
                )
                or 0
            )
            if count >= LIMITS.requests_per_collection:
                raise TooMany(
                    f"a collection holds at most {LIMITS.requests_per_collection} requests"
                )
            position = int(
                await s.scalar(
                    select(func.coalesce(func.max(RequestRow.position) + 1, 0)).where(
                        RequestRow.collection_id == target.id
                    )
                )
                or 0
            )
            if row is None:
                row = RequestRow(id=_new_id())
                s.add(row)
            row.collection_id, row.position = target.id, position
        _fill(row, req, name, body, who, self.clock())
        return _request_pb(row)

    async def _room(
        self, s: AsyncSession, who: Identity, cid: str, adding: int, replacing: str = ""
    ) -> None:
        """Refuse a write of `adding` characters that would take what `who` has saved,
        or what collection `cid` holds, past `max_saved_bytes` (`replacing`: the row the
        write replaces, not counted)."""
        limit, others = self.max_saved_bytes, RequestRow.id != replacing
        mine = await s.scalar(select(_SIZE).where(RequestRow.updated_by == who.key, others))
        held = await s.scalar(select(_SIZE).where(RequestRow.collection_id == cid, others))
        for what, used in (("your saved requests", mine), ("the collection's requests", held)):
            if int(used or 0) + adding > limit:
                raise TooMany(
                    f"{what} would hold {int(used or 0) + adding} bytes; at most {limit}, the "
                    "catalog's limit (--max-saved-bytes-per-identity)"
                )

    async def delete_request(self, who: Identity, rid: str) -> bool:
        """Delete one saved request."""
        async with self._session() as s:
            await s.delete(await self._request(s, who, rid))
        return True

    async def duplicate_request(self, who: Identity, rid: str) -> pb.SavedRequest:
        """A copy right after the original ("<name> copy")."""
        async with self._session(order=True) as s:
            row = await self._request(s, who, rid)
            await self._lock_order(s, await self._collection(s, who, row.collection_id))
            rows = await self._requests(s, row.collection_id)
            if len(rows) >= LIMITS.requests_per_collection:
                raise TooMany(
                    f"a collection holds at most {LIMITS.requests_per_collection} requests"
                )
            await self._room(s, who, row.collection_id, row.size)
            copy = RequestRow(
                id=_new_id(),
                collection_id=row.collection_id,
                folder=row.folder,
                name=f"{row.name} copy"[: LIMITS.name],
                description=row.description,
                service=row.service,
                method=row.method,
                endpoint=row.endpoint,
                transport=row.transport,
                body=row.body,
                size=row.size,
                updated_by=who.key,
                updated_at=self.clock(),
            )
            order = [r for r in rows]
            order.insert(order.index(row) + 1, copy)
            s.add(copy)
            for i, r in enumerate(order):
                r.position = i
            return _request_pb(copy)

    async def reorder(self, who: Identity, cid: str, ids: Sequence[str]) -> list[pb.SavedRequest]:
        """Put the collection's requests in the order of `ids` (each id exactly once)."""
        async with self._session(order=True) as s:
            row = await self._collection(s, who, cid)
            await self._lock_order(s, row)
            rows = {r.id: r for r in await self._requests(s, row.id)}
            if len(ids) != len(set(ids)) or set(ids) != rows.keys():
                raise Invalid(
                    f"requestIds must name each of the collection's {len(rows)} requests once",
                    field="requestIds",
                )
            for i, rid in enumerate(ids):
                rows[rid].position = i
            return [_request_pb(rows[rid]) for rid in ids]

    async def requests_for_run(
        self, who: Identity, cid: str, ids: Sequence[str]
    ) -> tuple[str, list[pb.SavedRequest]]:
        """The collection's id and the requests to run: all in order, or the named ones."""
        async with self._session() as s:
            if ids:
                rows = [
                    await self._request(s, who, rid)
                    for rid in ids[: LIMITS.requests_per_collection]
                ]
                cids = {r.collection_id for r in rows}
                if len(cids) != 1 or (cid and cid not in cids):
                    raise Invalid(
                        "the requests of one run belong to one collection", field="requestIds"
                    )
                return cids.pop(), (await asyncio.to_thread(_messages, rows, []))[0]
            row = await self._collection(s, who, cid)
            rows = await self._requests(s, row.id)
            return row.id, (await asyncio.to_thread(_messages, rows, []))[0]

    async def find_collection(self, who: Identity, name_or_id: str) -> str:
        """A collection's id from its id or (unique) name."""
        async with self._session() as s:
            row = await s.get(CollectionRow, name_or_id)
            if row is not None and self._visible(row, who):
                return row.id
            rows = [
                r
                for r in (
                    await s.scalars(select(CollectionRow).where(CollectionRow.name == name_or_id))
                ).all()
                if self._visible(r, who)
            ]
        if len(rows) != 1:
            what = "several collections are" if rows else "no collection is"
            raise NotFound(f"{what} named {name_or_id[:100]!r}: give its id")
        return rows[0].id

    async def import_collection(
        self, who: Identity, team: str, imported: Imported
    ) -> pb.Collection:
        """A new collection holding what the files hold (one transaction: all or
        nothing)."""
        head = pb.SaveCollectionRequest(
            name=imported.name, description=imported.description, team=team
        )
        async with self._session() as s:
            made = await self._save_collection(s, who, head)
            await s.flush()
            if len(imported.requests) > LIMITS.requests_per_collection:
                raise TooMany(
                    f"a collection holds at most {LIMITS.requests_per_collection} requests"
                )
            now = self.clock()
            rows = []
            for position, req in enumerate(imported.requests):  # checked, then added at once
                name = check_name(req.name, "name")
                body = json.dumps(request_body(req), sort_keys=True, ensure_ascii=False)
                row = RequestRow(id=_new_id(), collection_id=made.id, position=position)
                _fill(row, req, name, body, who, now)
                rows.append(row)
            await self._room(s, who, made.id, sum(r.size for r in rows))
            s.add_all(rows)
            for env in imported.environments:
                env.collection_id = made.id
                await self._save_environment(s, who, env)
            made.request_count = len(imported.requests)
            made.environment_count = len(imported.environments)
        return made

    # -- environments ---------------------------------------------------------------

    async def save_environment(self, who: Identity, env: pb.Environment) -> pb.Environment:
        """Create or update an environment; secrets sent empty keep their stored value."""
        async with self._session() as s:
            return await self._save_environment(s, who, env)

    async def _save_environment(
        self, s: AsyncSession, who: Identity, env: pb.Environment
    ) -> pb.Environment:
        check_environment(env)
        coll = await self._collection(s, who, env.collection_id)
        row = None
        if env.id:
            row = await s.get(EnvironmentRow, env.id)
            if row is None or row.collection_id != coll.id:
                raise NotFound(f"no environment {env.id[:64]!r} in this collection", field="id")
        else:
            count = (
                await s.scalar(
                    select(func.count())
                    .select_from(EnvironmentRow)
                    .where(EnvironmentRow.collection_id == coll.id)
                )
                or 0
            )
            if count >= LIMITS.environments_per_collection:
                raise TooMany(
                    f"a collection holds at most {LIMITS.environments_per_collection} environments"
                )
        old = json.loads(row.body) if row is not None else {}
        body = await asyncio.to_thread(_seal_environment, env, old, self.sealer)  # 12 MiB
        if row is None:
            row = EnvironmentRow(id=_new_id(), collection_id=coll.id)
            s.add(row)
        row.name = env.name.strip()
        row.body = json.dumps(body, sort_keys=True)
        row.updated_at = self.clock()
        await s.flush()
        return _environment_pb(row)

    async def delete_environment(self, who: Identity, eid: str) -> bool:
        """Delete one environment."""
        async with self._session() as s:
            row = await s.get(EnvironmentRow, eid.strip()) if eid.strip() else None
            if row is not None:
                with contextlib.suppress(NotFound):
                    await self._collection(s, who, row.collection_id)
                    await s.delete(row)
                    return True
        raise NotFound(f"no environment {eid[:64]!r} that you may see", field="id")

    async def resolve_environment(self, who: Identity, cid: str, name_or_id: str) -> Resolved:
        """The environment `name_or_id` of collection `cid` with its secrets opened (for a
        run on this server only); an empty name is no environment."""
        if not name_or_id.strip():
            return Resolved()
        async with self._session() as s:
            await self._collection(s, who, cid)
            query = select(EnvironmentRow).where(EnvironmentRow.collection_id == cid)
            rows = (await s.scalars(query)).all()
        found = [r for r in rows if name_or_id.strip() in (r.id, r.name)]
        if not found:
            raise NotFound(
                f"the collection has no environment {name_or_id[:100]!r}", field="environment"
            )
        row = found[0]
        return await asyncio.to_thread(
            lambda: open_environment(row.name, json.loads(row.body), self.sealer)
        )  # up to 200 sealed values of 64 KiB: opened in a thread


# -- rows ⇄ messages -----------------------------------------------------------------


def _fill(
    row: RequestRow, req: pb.SavedRequest, name: str, body: str, who: Identity, now: float
) -> None:
    row.folder = req.folder.strip().strip("/")
    row.name = name
    row.description = req.description
    row.service = req.service.strip().lstrip(".")
    row.method = req.method.strip()
    row.endpoint = req.endpoint.strip()
    row.transport = transport_name(req.transport)
    row.body = body
    row.size = len(body) + len(req.description)
    row.updated_by = who.key
    row.updated_at = now


def _messages(
    requests: Sequence[RequestRow], environments: Sequence[EnvironmentRow]
) -> tuple[list[pb.SavedRequest], list[pb.Environment]]:
    """Rows as messages (their JSON bodies parsed: call it in a thread)."""
    return [_request_pb(r) for r in requests], [_environment_pb(e) for e in environments]


def _request_pb(row: RequestRow) -> pb.SavedRequest:
    req = pb.SavedRequest(
        id=row.id,
        collection_id=row.collection_id,
        folder=row.folder,
        name=row.name,
        description=row.description,
        service=row.service,
        method=row.method,
        endpoint=row.endpoint,
        transport=TRANSPORTS.get(row.transport, TRANSPORTS["grpc"]),
        position=row.position,
    )
    return apply_body(req, json.loads(row.body))


_AUTH_PLAIN = ("kind", "username", "header_name", "token_url", "client_id", "scopes", "audience")


def _seal_environment(env: pb.Environment, old: dict[str, Any], sealer: Sealer) -> dict[str, Any]:
    """The stored body of `env`: secrets sealed, empty secrets keeping `old`'s."""
    old_vars = {v["name"]: v for v in old.get("variables", [])}
    variables = [
        {
            "name": v.name,
            "secret": v.secret,
            "value": _secret_value(v, old_vars.get(v.name, {}), sealer) if v.secret else v.value,
        }
        for v in env.variables
    ]
    auth = env.auth or pb.AuthHelper()
    old_auth = old.get("auth", {})
    sealed_auth: dict[str, Any] = {k: getattr(auth, k).strip() for k in _AUTH_PLAIN}
    for k in AUTH_SECRETS:
        given = getattr(auth, k)
        sealed_auth[k] = (
            sealer.seal(given, f"auth.{k}") if given and given != MASK else old_auth.get(k, "")
        )
    tls = env.tls or pb.EnvironmentTls()
    old_tls = old.get("tls", {})
    key = tls.client_key_pem
    return {
        "variables": variables,
        "auth": sealed_auth,
        "tls": {
            "client_cert_pem": tls.client_cert_pem,
            "ca_cert_pem": tls.ca_cert_pem,
            "client_key_pem": (
                sealer.seal(key, "tls.clientKeyPem")
                if key and key != MASK
                else old_tls.get("client_key_pem", "")
            ),
        },
    }


def _secret_value(v: pb.Variable, old: dict[str, Any], sealer: Sealer) -> str:
    """A secret variable's sealed value: the new one, else the stored one (sealed now if
    it was a plain variable before)."""
    what = f"variable {v.name!r}"
    if v.value and v.value != MASK:
        return sealer.seal(v.value, what)
    stored = str(old.get("value", ""))
    return stored if old.get("secret") else sealer.seal(stored, what)


def _environment_pb(row: EnvironmentRow) -> pb.Environment:
    """An environment as answers show it: secrets masked."""
    body = json.loads(row.body)
    auth = body.get("auth", {})
    tls = body.get("tls", {})
    return pb.Environment(
        id=row.id,
        collection_id=row.collection_id,
        name=row.name,
        variables=[
            pb.Variable(
                name=v["name"],
                value="" if v.get("secret") else v.get("value", ""),
                secret=bool(v.get("secret")),
                value_set=bool(v.get("value")),
            )
            for v in body.get("variables", [])
        ],
        auth=_auth_pb(
            {k: auth.get(k, "") for k in _AUTH_PLAIN}, [k for k in AUTH_SECRETS if auth.get(k)]
        ),
        tls=pb.EnvironmentTls(
            client_cert_pem=tls.get("client_cert_pem", ""),
            ca_cert_pem=tls.get("ca_cert_pem", ""),
            client_key_set=bool(tls.get("client_key_pem")),
        ),
    )


def _auth_pb(values: dict[str, str], secrets_set: list[str] | None = None) -> pb.AuthHelper:
    helper = pb.AuthHelper(secrets_set=secrets_set or [])
    for key, value in values.items():
        setattr(helper, key, str(value))
    return helper


def open_environment(name: str, body: dict[str, Any], sealer: Sealer) -> Resolved:
    """A stored environment body with its secrets opened."""
    values: dict[str, str] = {}
    secret_values: set[str] = set()
    for v in body.get("variables", []):
        if v.get("secret"):
            clear = sealer.open(v.get("value", ""), f"variable {v['name']!r}")
            if clear:
                secret_values.add(clear)
        else:
            clear = v.get("value", "")
        values[v["name"]] = clear
    auth = body.get("auth", {})
    opened = {k: sealer.open(auth.get(k, ""), f"auth.{k}") for k in AUTH_SECRETS}
    secret_values.update(v for v in opened.values() if v)
    tls = body.get("tls", {})
    return Resolved(
        name=name,
        variables=values,
        secret_values=frozenset(secret_values),
        auth=_auth_pb({**{k: auth.get(k, "") for k in _AUTH_PLAIN}, **opened}),
        tls=pb.EnvironmentTls(
            client_cert_pem=tls.get("client_cert_pem", ""),
            ca_cert_pem=tls.get("ca_cert_pem", ""),
            client_key_pem=sealer.open(tls.get("client_key_pem", ""), "tls.clientKeyPem"),
        ),
    )


class Opener:
    """The store, opened (and migrated) on first use or at start-up, once."""

    def __init__(
        self, url: str, sealer: Sealer, *, everyone: bool = True, max_saved_bytes: int = 0
    ) -> None:
        self.url = url or db.default_url()
        self.max_saved_bytes = max_saved_bytes
        self.sealer = sealer
        self.everyone = everyone
        self._store: Store | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Store:
        """The open store (opening it the first time; Unavailable while it cannot be)."""
        if self._store is None:
            async with self._lock:
                if self._store is None:
                    try:
                        self._store = await Store.open(
                            self.url,
                            self.sealer,
                            everyone=self.everyone,
                            max_saved_bytes=self.max_saved_bytes,
                        )
                    except Unavailable as exc:  # its URL (a path, a host) is for the log
                        _log.error("%s", exc.message)
                        raise Unavailable(
                            "the saved-requests database cannot be opened (the catalog's "
                            "log says which and why); try again later"
                        ) from None
        return self._store

    async def close(self) -> None:
        """Close the store if it was opened."""
        if self._store is not None:
            await self._store.close()
            self._store = None
