"""Great Expectations 1.x, our way: an ephemeral context on the restored scratch database.

- one SQL datasource (the scratch DB), one table asset + whole-table batch per table, one suite
  and one validation definition per table, plus a one-row query batch for database-level checks;
- every expectation is pushed down to PostgreSQL as SQL (no rows are pulled into Python beyond the
  handful of unexpected values a failing check shows);
- one checkpoint run *without* actions, then Data Docs built once (the per-validation
  UpdateDataDocsAction would rebuild the whole site once per table): index, validation results,
  suites;
- the database password never enters GX configuration: the connection string is a ``${VAR}``
  reference resolved from this process's environment while the run lasts.

The GX Airflow provider is not usable with Airflow 3.3; this module is the wrapper we use instead.
``import great_expectations`` costs ~2.5 s and ~170 MB, half of it scipy.stats and altair, which
only the KS-test and KL-divergence expectations use: :func:`load_gx` defers those two until first
touched; :func:`preload` lets a drill import GX in a background
thread while it waits on the restore.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import secrets
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from hisops.verify.expectations import DATABASE_BATCH_SQL, PlannedExpectation, SuitePlan, TablePlan

log = logging.getLogger(__name__)

SITE = "hisops_evidence"
SAMPLE_VALUES = 10  # unexpected values shown per failing check (evidence pages are 0600)
DATASOURCE = "restored"
DATABASE_ASSET = "database"
_UNUSED_STATIC = (
    "static/images/glossary_scroller.gif",
    "static/images/iterative-dev-loop.png",
    "static/images/validation_failed_unexpected_values.gif",
)
_preloaded = threading.Event()
# imported by great_expectations at import time for expectations hisops never plans (KS test, KL
# divergence): ~90 MB of RSS and ~0.5 s, loaded only if one of them ever runs
DEFERRED_MODULES = ("scipy.stats", "altair")
_load_lock = threading.Lock()


@dataclass(frozen=True)
class CheckOutcome:
    """One expectation's verdict, in the shape the catalog stores and the report renders."""

    kind: str
    table: str | None
    expectation: str
    success: bool
    label_zh: str
    label_en: str
    observed: Any = None
    unexpected_count: int | None = None
    sample: list[Any] = field(default_factory=list)
    error: str | None = None

    def line(self) -> str:
        """'public.patient: 行数 = 1,000 … — observed 999' (what a failure message shows)."""
        seen = f"; 实际 observed {self.observed}" if self.observed is not None else ""
        count = f"; 不符行数 unexpected {self.unexpected_count}" if self.unexpected_count else ""
        sample = f"; 示例 e.g. {self.sample[:3]}" if self.sample else ""
        error = f"; 错误 error {self.error}" if self.error else ""
        return f"{self.label_zh} ({self.label_en}){seen}{count}{sample}{error}"

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class GxRun:
    outcomes: list[CheckOutcome]
    docs_index: Path | None
    seconds: float
    invalid: list[str] = field(default_factory=list)  # inventory expectations GX could not build

    @property
    def failed(self) -> list[CheckOutcome]:
        return [o for o in self.outcomes if not o.success]


# --- import in the background --------------------------------------------------------------------


def _defer(name: str) -> None:
    """Put a stand-in for ``name`` in ``sys.modules`` that imports the real module on its first
    attribute access (PEP 562 ``__getattr__``; ``LazyLoader`` would load at ``import name``
    already, because the import statement reads ``__spec__``)."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None:
        return
    stand_in = ModuleType(name)
    stand_in.__spec__ = spec

    def load(attribute: str) -> object:
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]
        return getattr(importlib.import_module(name), attribute)

    stand_in.__getattr__ = load  # type: ignore[method-assign]
    sys.modules[name] = stand_in
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, stand_in)


def load_gx() -> ModuleType:
    """``import great_expectations`` with :data:`DEFERRED_MODULES` deferred (thread-safe)."""
    with _load_lock:
        if "great_expectations" not in sys.modules:
            os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
            for name in DEFERRED_MODULES:
                _defer(name)
        import great_expectations

        return great_expectations


def preload() -> threading.Thread:
    """Start importing great_expectations in a daemon thread (the GIL is free while we wait on
    pg_restore)."""

    def load() -> None:
        try:
            load_gx()
        except Exception:  # noqa: BLE001 - the real import in run_suite reports it properly
            log.exception("great_expectations preload failed")
        finally:
            _preloaded.set()

    thread = threading.Thread(target=load, name="gx-preload", daemon=True)
    thread.start()
    return thread


# --- connection --------------------------------------------------------------------------------


def sqlalchemy_url(dsn: str, options: str = "") -> str:
    """libpq DSN → ``postgresql+psycopg2://`` URL (password and all parts URL-quoted); ``options``:
    extra session settings (``-c name=value``), added to any the DSN has."""
    from urllib.parse import quote, urlencode

    from psycopg2.extensions import parse_dsn

    p = parse_dsn(dsn)
    if options:
        p["options"] = f"{p.get('options', '')} {options}".strip()
    auth = quote(p.pop("user", ""), safe="")
    password = p.pop("password", None)
    if password:
        auth += ":" + quote(password, safe="")
    host, port, db = p.pop("host", "localhost"), p.pop("port", "5432"), p.pop("dbname", "postgres")
    query = f"?{urlencode(p)}" if p else ""
    return f"postgresql+psycopg2://{auth}@{host}:{port}/{quote(db, safe='')}{query}"


@contextmanager
def _url_in_environment(url: str) -> Iterator[str]:
    name = f"HISOPS_GX_URL_{secrets.token_hex(4).upper()}"
    os.environ[name] = url
    try:
        yield "${" + name + "}"
    finally:
        os.environ.pop(name, None)


# --- building the GX objects --------------------------------------------------------------------


def _context(docs_dir: Path) -> Any:
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    context.add_data_docs_site(
        SITE,
        {
            "class_name": "SiteBuilder",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(docs_dir),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "site_section_builders": {"profiling": "0"},  # validation results + the suites they ran
        },
    )
    return context


def _expectation(planned: PlannedExpectation, index: int) -> Any:
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    config = ExpectationConfiguration(
        type=planned.type,
        kwargs=dict(planned.kwargs),
        meta={"hisops_index": index, "hisops_kind": planned.kind},
        notes=f"{planned.label_zh} / {planned.label_en}",
    )
    return config.to_domain_obj()


def _suite(
    name: str, planned: tuple[PlannedExpectation, ...], table: str | None, invalid: list[str]
) -> tuple[Any, dict[int, tuple[str | None, PlannedExpectation]]]:
    import great_expectations as gx

    expectations, index = [], {}
    for i, p in enumerate(planned):
        try:
            expectations.append(_expectation(p, i))
            index[i] = (table, p)
        except Exception as exc:  # noqa: BLE001 - an inventory typo must not hide the other checks
            invalid.append(
                f"{table or 'database'}: {p.type} {dict(p.kwargs)}: {type(exc).__name__}: {exc}"[
                    :400
                ]
            )
    return gx.ExpectationSuite(name=name, expectations=expectations), index


def _existing_tables(url: str) -> set[str]:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT table_schema || '.' || table_name FROM information_schema.tables "
                    "WHERE table_type = 'BASE TABLE'"
                )
            )
            return {r[0] for r in rows}
    finally:
        engine.dispose()


@dataclass
class _Wiring:
    definitions: list[Any] = field(default_factory=list)
    index: dict[str, dict[int, tuple[str | None, PlannedExpectation]]] = field(default_factory=dict)
    invalid: list[str] = field(default_factory=list)
    missing: list[TablePlan] = field(default_factory=list)


def _add_validation(
    context: Any,
    wiring: _Wiring,
    asset: Any,
    suite_name: str,
    planned: tuple[PlannedExpectation, ...],
    table: str | None,
) -> None:
    import great_expectations as gx

    batch = asset.add_batch_definition_whole_table("all")
    suite, index = _suite(suite_name, planned, table, wiring.invalid)
    suite = context.suites.add(suite)
    wiring.index[suite_name] = index
    wiring.definitions.append(
        context.validation_definitions.add(
            gx.ValidationDefinition(name=f"validate {suite_name}", data=batch, suite=suite)
        )
    )


def _wire(context: Any, plan: SuitePlan, url_ref: str, existing: set[str]) -> _Wiring:
    wiring = _Wiring()
    source = context.data_sources.add_postgres(DATASOURCE, connection_string=url_ref)
    for table in plan.tables:
        if table.qualified not in existing:
            wiring.missing.append(table)
            continue
        asset = source.add_table_asset(
            name=table.qualified, table_name=table.name, schema_name=table.schema
        )
        _add_validation(
            context, wiring, asset, f"drill.{table.qualified}", table.expectations, table.qualified
        )
    asset = source.add_query_asset(name=DATABASE_ASSET, query=DATABASE_BATCH_SQL)
    _add_validation(context, wiring, asset, "drill.database", plan.database, None)
    return wiring


# --- reading results ------------------------------------------------------------------------------


def _error_of(result: Any) -> str | None:
    info = result.exception_info or {}
    if "raised_exception" in info:  # one exception for the whole expectation
        return (info.get("exception_message") or "")[:500] if info.get("raised_exception") else None
    messages = [
        v.get("exception_message")
        for v in info.values()
        if isinstance(v, dict) and v.get("raised_exception")
    ]
    return "; ".join(m for m in messages if m)[:500] or None


def _observed(result: Any) -> tuple[Any, int | None, list[Any]]:
    data = result.result or {}
    observed = data.get("observed_value")
    count = data.get("unexpected_count")
    sample = list(data.get("partial_unexpected_list") or [])[:SAMPLE_VALUES]
    if isinstance(observed, str | int | float | bool) or observed is None:
        return observed, count, sample
    return str(observed)[:300], count, sample


def _outcome(result: Any, table: str | None, planned: PlannedExpectation) -> CheckOutcome:
    observed, count, sample = _observed(result)
    return CheckOutcome(
        kind=planned.kind,
        table=table,
        expectation=planned.type,
        success=bool(result.success),
        label_zh=planned.label_zh,
        label_en=planned.label_en,
        observed=observed,
        unexpected_count=count,
        sample=[str(s)[:100] for s in sample],
        error=_error_of(result),
    )


def _outcomes(checkpoint_result: Any, wiring: _Wiring) -> list[CheckOutcome]:
    out = []
    for validation in checkpoint_result.run_results.values():
        index = wiring.index.get(validation.suite_name, {})
        for result in validation.results:
            position = (result.expectation_config.meta or {}).get("hisops_index")
            if position in index:
                out.append(_outcome(result, *index[position]))
    for table in wiring.missing:
        out.append(
            CheckOutcome(
                "tables",
                table.qualified,
                "table_exists",
                False,
                f"{table.qualified} 表缺失",
                f"{table.qualified}: table missing in the restored database",
            )
        )
    return out


# --- evidence -----------------------------------------------------------------------------------


def build_docs(context: Any, docs_dir: Path) -> Path | None:
    context.build_data_docs(site_names=[SITE])
    for rel in _UNUSED_STATIC:  # 3.4 MB of tutorial images no validation page uses
        (docs_dir / rel).unlink(missing_ok=True)
    index = docs_dir / "index.html"
    return index if index.is_file() else None


def session_options(mode: str) -> str:
    """GX sends many short statements: JIT compilation and (in fast mode, where the big scans are
    row counts only) parallel-worker start-up cost more than they save — 1.6 s instead of 2.7 s for
    the whole suite on a 2.3 GB database — and a drill then takes one core per session on a shared
    server."""
    return "-c jit=off" + (" -c max_parallel_workers_per_gather=0" if mode == "fast" else "")


def run_suite(plan: SuitePlan, dsn: str, docs_dir: Path) -> GxRun:
    """Validate the restored database ``dsn`` against ``plan``; Data Docs go to ``docs_dir``."""
    start = time.monotonic()
    gx = load_gx()

    url = sqlalchemy_url(dsn, session_options(plan.mode))
    docs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _url_in_environment(url) as url_ref:
        context = _context(docs_dir)
        wiring = _wire(context, plan, url_ref, _existing_tables(url))
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name="hisops restore drill",
                validation_definitions=wiring.definitions,
                result_format={
                    "result_format": "SUMMARY",
                    "partial_unexpected_count": SAMPLE_VALUES,
                },
            )
        )
        result = checkpoint.run()
        outcomes = _outcomes(result, wiring)
        docs = build_docs(context, docs_dir)
    seconds = time.monotonic() - start
    log.info(
        "GX: %d expectations, %d failed, %.1fs",
        len(outcomes),
        sum(not o.success for o in outcomes),
        seconds,
    )
    return GxRun(
        outcomes=outcomes, docs_index=docs, seconds=round(seconds, 3), invalid=wiring.invalid
    )


def discard_docs(docs_dir: Path) -> None:
    shutil.rmtree(docs_dir, ignore_errors=True)
