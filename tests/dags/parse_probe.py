"""Imports one DAG file the way a dag-processor would, and reports what the import did.

Run as a subprocess: ``python parse_probe.py FILE`` → one JSON line on stdout. Any socket
connection, Airflow connection or variable lookup during the import is recorded (and refused).
"""

from __future__ import annotations

import importlib.util
import json
import socket
import sys
import time

HEAVY = (
    "great_expectations",
    "pandas",
    "numpy",
    "paramiko",
    "psycopg2",
    "sqlalchemy",
    "apprise",
    "jinja2",
    "matplotlib",
    "requests",
    "httpx",
)
events: list[str] = []


def _refuse(what: str):
    def guard(*args, **kwargs):
        events.append(f"{what} {args[1:2] if len(args) > 1 else args}")
        raise RuntimeError(f"parse-time {what} is not allowed")

    return guard


def main(path: str) -> None:
    socket.socket.connect = _refuse("socket.connect")
    socket.socket.connect_ex = _refuse("socket.connect_ex")
    socket.create_connection = _refuse("socket.create_connection")
    from airflow.sdk import DAG, BaseHook, Variable
    from airflow.sdk.definitions._internal.contextmanager import DagContext

    BaseHook.get_connection = classmethod(_refuse("BaseHook.get_connection"))
    Variable.get = staticmethod(_refuse("Variable.get"))
    before = set(sys.modules)
    start = time.perf_counter()
    spec = importlib.util.spec_from_file_location("dagfile_under_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as DagBag does, so @dag calls auto-register
    DagContext.current_autoregister_module_name = spec.name
    spec.loader.exec_module(module)
    seconds = time.perf_counter() - start
    new = set(sys.modules) - before
    heavy = sorted({m.split(".")[0] for m in new if m.split(".")[0] in HEAVY})
    third_party = sorted(
        {m.split(".")[0] for m in new} - set(sys.stdlib_module_names) - {spec.name}
    )
    found = {id(v): v for v in vars(module).values() if isinstance(v, DAG)}
    found.update({id(d): d for d, mod in DagContext.autoregistered_dags if mod is module})
    dags = [_describe(d) for d in found.values()]
    print(
        json.dumps(
            {
                "seconds": seconds,
                "heavy": heavy,
                "third_party": third_party,
                "events": events,
                "dags": dags,
            },
            ensure_ascii=False,
            default=str,
        )
    )


def _describe(dag) -> dict:
    args = dag.default_args or {}
    return {
        "dag_id": dag.dag_id,
        "display_name": dag.dag_display_name,
        "tags": sorted(dag.tags or []),
        "owner": args.get("owner") or dag.owner,
        "retries": args.get("retries"),
        "doc_md": dag.doc_md or "",
        "access_control": dag.access_control,
        "tasks": [t.task_id for t in dag.tasks],
    }


if __name__ == "__main__":
    main(sys.argv[1])
