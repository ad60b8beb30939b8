"""The operator's API keys in PostgreSQL (see storage.base.KeyStore and keys.py).

Nothing is remembered between requests: each lookup is one query on a unique index (the digest,
or the id), so a key made or revoked through any replica, or by the ``keys`` command, counts on
every replica from its next request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from psycopg.rows import DictRow

from ...keys import (
    LAST_USED_EVERY,
    ApiKey,
    Scope,
    StoredKey,
    already_revoked,
    hash_key,
    mint,
    no_such_key,
    timestamp,
)
from .db import Pool

__all__ = ["PostgresKeyStore"]


class PostgresKeyStore:
    """The keys, through a pool shared with the other stores (open_postgres owns it)."""

    def __init__(self, pool: Pool, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._pool = pool
        self._clock = clock
        self._used: dict[str, float] = {}  # key id -> clock time last_used was written

    async def create(
        self,
        name: str,
        *,
        scope: str = "cards:write",
        rate: int = 60,
        allow_in_band_approval: bool = False,
    ) -> tuple[str, ApiKey]:
        new = mint(name, scope=scope, rate=rate, allow_in_band_approval=allow_in_band_approval)
        row = await self._one(
            "INSERT INTO api_keys (id, name, prefix, sha256, scope, rate, allow_in_band_approval)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING *",
            new.id, new.name, new.prefix, new.sha256, new.scope, new.rate,
            new.allow_in_band_approval,
        )  # fmt: skip
        assert row is not None
        return new.key, _stored(row).record

    async def get(self, key_id: str) -> ApiKey:
        row = await self._one("SELECT * FROM api_keys WHERE id = %s", key_id)
        if row is None:
            raise no_such_key(key_id)
        return _stored(row).record

    async def find(self, key: str) -> ApiKey | None:
        row = await self._one("SELECT * FROM api_keys WHERE sha256 = %s", hash_key(key))
        return None if row is None else _stored(row).matches(key)

    async def is_active(self, key_id: str) -> bool:
        row = await self._one("SELECT revoked_at IS NULL AS active FROM api_keys WHERE id = %s",
                              key_id)  # fmt: skip
        return row is not None and bool(row["active"])

    async def touch(self, key_id: str) -> None:
        now = self._clock()
        if now - self._used.get(key_id, -LAST_USED_EVERY) < LAST_USED_EVERY:
            return
        self._used[key_id] = now
        async with self._pool.connection() as conn:
            await conn.execute("UPDATE api_keys SET last_used_at = now() WHERE id = %s", (key_id,))

    async def all(self) -> list[ApiKey]:
        async with self._pool.connection() as conn:
            cursor = await conn.execute("SELECT * FROM api_keys ORDER BY created_at, id")
            return [_stored(row).record for row in await cursor.fetchall()]

    async def any_active(self) -> bool:
        row = await self._one(
            "SELECT EXISTS (SELECT 1 FROM api_keys WHERE revoked_at IS NULL) AS any"
        )
        return row is not None and bool(row["any"])

    async def revoke(self, key_id: str) -> ApiKey:
        row = await self._one(
            "UPDATE api_keys SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL"
            " RETURNING *",
            key_id,
        )
        if row is None:
            raise already_revoked(await self.get(key_id))  # get: not_found for an unknown id
        return _stored(row).record

    async def aclose(self) -> None:
        return None  # the pool belongs to open_postgres

    async def _one(self, sql: str, *args: Any) -> DictRow | None:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(sql, args)
            return await cursor.fetchone()


def _stored(row: DictRow) -> StoredKey:
    record = ApiKey(
        id=row["id"],
        name=row["name"],
        prefix=row["prefix"],
        scope=cast(Scope, row["scope"]),
        rate=row["rate"],
        created_at=timestamp(row["created_at"]),
        last_used_at=_when(row["last_used_at"]),
        revoked_at=_when(row["revoked_at"]),
        allow_in_band_approval=bool(row["allow_in_band_approval"]),
    )
    return StoredKey(record, row["sha256"])


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else timestamp(moment)
