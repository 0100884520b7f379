"""The statement runners every part of :class:`~hisops.catalog.repository.CatalogRepository`
shares (the repository and its mixins): one short transaction per call, rows as records."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.sql import Executable

R = TypeVar("R")


class CatalogError(RuntimeError):
    """The catalog refused an operation (unknown id, impossible state change)."""


class Statements:
    engine: Engine

    def _scalar(self, stmt: Executable) -> Any:
        with self.engine.begin() as conn:
            return conn.execute(stmt).scalar_one()

    def _rowcount(self, stmt: Executable) -> int:
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount

    def _all(self, cls: type[R], stmt: Executable) -> list[R]:
        with self.engine.connect() as conn:
            return [cls(**row._mapping) for row in conn.execute(stmt)]

    def _first(self, cls: type[R], stmt: Executable) -> R | None:
        found = self._all(cls, stmt.limit(1))  # type: ignore[attr-defined]
        return found[0] if found else None

    def _require(self, stmt: Executable, what: str) -> None:
        if self._rowcount(stmt) == 0:
            raise CatalogError(f"{what} does not exist")
