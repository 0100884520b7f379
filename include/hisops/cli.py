"""`hisops …` — what ops staff do outside the Airflow UI.

Every subcommand imports its module lazily so `hisops --help` stays instant.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _cmd_inventory_validate(args: argparse.Namespace) -> int:
    from hisops.inventory.loader import InventoryError, load_inventory

    try:
        inv = load_inventory(Path(args.path))
    except InventoryError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(f"OK {args.path}: {inv.summary()}")
    return 0


CATALOG_URL_HELP = "SQLAlchemy URL (default: $HISOPS_CATALOG_URL or connection hisops_catalog)"


def _url_option(parser: argparse.ArgumentParser) -> None:
    """``--url``: the catalog's SQLAlchemy URL (read by :func:`_catalog_url`)."""
    parser.add_argument("--url", help=CATALOG_URL_HELP)


def _group(sub: argparse._SubParsersAction, name: str, help: str) -> argparse._SubParsersAction:
    """A command group, ``hisops <name> <cmd>``."""
    return sub.add_parser(name, help=help).add_subparsers(dest="cmd", required=True)


def _catalog_url(args: argparse.Namespace) -> str:
    url = args.url or os.environ.get("HISOPS_CATALOG_URL")
    if url:
        return url
    from hisops.airflow.connections import catalog_sqlalchemy_url

    return catalog_sqlalchemy_url()


def _cmd_catalog_upgrade(args: argparse.Namespace) -> int:
    from hisops.catalog.migrate import upgrade

    upgrade(_catalog_url(args), args.revision)
    print(f"catalog schema at {args.revision}")
    return 0


def _cmd_synth_generate(args: argparse.Namespace) -> int:
    from hisops.synth.generate import generate

    try:
        generate(args.dsn, scale=args.scale, seed=args.seed, log=print)
    except ValueError as exc:
        print(f"hisops synth generate: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_roles_sync(args: argparse.Namespace) -> int:
    from hisops.airflow.roles import sync_roles

    for line in sync_roles():
        print(line)
    return 0


def _cmd_pools_sync(args: argparse.Namespace) -> int:
    from hisops.airflow.pools import ensure_pools

    for line in ensure_pools():
        print(line)
    return 0


def _cmd_evidence_list(args: argparse.Namespace) -> int:
    """等保证据包 evidence packs in the catalog, newest month first.

    One line each: id, month, time, size, SHA-256, file."""
    from hisops.catalog.repository import CatalogRepository

    repo = CatalogRepository.from_url(_catalog_url(args))
    try:
        packs = repo.evidence_packs(limit=args.limit)
    finally:
        repo.dispose()
    if not packs:
        print("没有证据包 no evidence pack yet (DAG kpi_report builds one per month)")
    for p in packs:
        print(
            f"#{p.id}  {p.month}  {p.created_at:%Y-%m-%d %H:%M %Z}  {p.size_bytes} B  "
            f"{len(p.items)} items  "
            f"sha256 {p.sha256}  {p.path}"
        )
    return 0


def _cmd_proposals(args: argparse.Namespace) -> int:
    from hisops.catalog.repository import CatalogError, CatalogRepository
    from hisops.tune.proposals import decide, proposal_lines

    repo = CatalogRepository.from_url(_catalog_url(args))
    try:
        if args.cmd == "list":
            states = None if args.state == "all" else [args.state]
            for line in proposal_lines(repo.proposals(args.database, states=states)):
                print(line)
            return 0
        try:
            record = decide(repo, args.id, args.cmd == "approve", args.by, args.note)
        except CatalogError as exc:
            print(f"hisops proposals {args.cmd}: {exc} (refused, audited)", file=sys.stderr)
            return 1
        print(f"proposal #{record.id} {record.state} by {args.by}: {record.definition}")
        return 0
    finally:
        repo.dispose()


def _proposals_parser(sub: argparse._SubParsersAction) -> None:
    props = _group(sub, "proposals", "调优提案 tuning proposals")
    ls = props.add_parser("list", help="list proposals (default: open ones)")
    ls.add_argument("--database")
    ls.add_argument(
        "--state",
        default="proposed",
        choices=["proposed", "approved", "applied", "measured", "rejected", "all"],
    )
    for name in ("approve", "reject"):
        d = props.add_parser(name, help=f"{name} a proposed change (audited)")
        d.add_argument("id", type=int)
        d.add_argument("--by", required=True, help="who decides (named in the audit trail)")
        d.add_argument("--note")
    for p in props.choices.values():
        _url_option(p)
        p.set_defaults(func=_cmd_proposals)


def _audit_repo(args: argparse.Namespace):
    from hisops.catalog.repository import CatalogRepository

    return CatalogRepository.from_url(_catalog_url(args))


def _inventory_defaults() -> tuple[str, Path]:
    """(timezone, reports folder) of the inventory in use; UTC and ./reports without one."""
    from hisops.inventory.loader import InventoryError, load_inventory

    path = Path(
        os.environ.get("HISOPS_INVENTORY")
        or os.environ.get("AIRFLOW_VAR_HISOPS_INVENTORY")
        or "inventory/hospital.example.yaml"
    )
    try:
        inv = load_inventory(path)
    except (InventoryError, OSError):
        return "UTC", Path("reports")
    return inv.timezone, Path(inv.reports.path)


def _cmd_audit_verify(args: argparse.Namespace) -> int:
    from hisops.audit.verify import verify_chain

    repo = _audit_repo(args)
    try:
        report = verify_chain(repo)
    finally:
        repo.dispose()
    print(report.summary())
    for problem in report.problems:
        print(f"  {problem}")
    return 0 if report.ok else 1


def _cmd_audit_export(args: argparse.Namespace) -> int:
    import getpass

    from hisops.audit.export import ExportError, export_month

    tz, reports = _inventory_defaults()
    repo = _audit_repo(args)
    try:
        record = export_month(
            repo,
            args.month,
            Path(args.out or reports / "audit"),
            actor=f"cli:{getpass.getuser()}",
            tz=args.tz or tz,
        )
    except ExportError as exc:
        print(f"hisops audit export: {exc}", file=sys.stderr)
        return 1
    finally:
        repo.dispose()
    print(
        f"{record.path}: {record.event_count} events, seq {record.first_seq}..{record.last_seq}, "
        f"head {record.head_hash}, sha256 {record.file_sha256}"
    )
    if not record.chain_ok:
        print("审计链被改动 audit chain broken — run `hisops audit verify`", file=sys.stderr)
        return 1
    return 0


def _cmd_security_accept(args: argparse.Namespace) -> int:
    import getpass

    from hisops.security.baseline import accept_drift

    repo = _audit_repo(args)
    try:
        ok = accept_drift(
            repo,
            args.target,
            args.item,
            by=args.by or f"cli:{getpass.getuser()}",
            reason=args.reason,
        )
    finally:
        repo.dispose()
    if not ok:
        print(f"{args.target}:{args.item}: 没有待接受的变化 no drift to accept", file=sys.stderr)
        return 1
    print(f"{args.target}:{args.item}: 已接受为新基线 accepted as the new baseline (audited)")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from hisops.devenv import demo

    return getattr(demo, args.action)()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hisops", description="hisops — 医疗信息系统运维平台 (hospital IS operations)"
    )
    sub = p.add_subparsers(dest="group", required=True)

    inv = _group(sub, "inventory", "清单 inventory")
    v = inv.add_parser("validate", help="validate an inventory file (exit 1 on error)")
    v.add_argument("path")
    v.set_defaults(func=_cmd_inventory_validate)

    cat = _group(sub, "catalog", "运维目录库 ops catalog")
    u = cat.add_parser("upgrade", help="apply Alembic migrations to the catalog database")
    _url_option(u)
    u.add_argument("--revision", default="head")
    u.set_defaults(func=_cmd_catalog_upgrade)

    syn = _group(sub, "synth", "合成医院数据 synthetic hospital data")
    g = syn.add_parser("generate", help="create the synthetic HIS schema and data in a database")
    g.add_argument("--dsn", required=True, help="libpq DSN of the (empty) target database")
    g.add_argument("--scale", type=float, default=1.0, help="scale factor; 1 ≈ 100 MB")
    g.add_argument("--seed", type=int, default=42)
    g.set_defaults(func=_cmd_synth_generate)

    roles = _group(sub, "roles", "角色 roles")
    r = roles.add_parser("sync", help="create/update the five hisops roles in Airflow (idempotent)")
    r.set_defaults(func=_cmd_roles_sync)

    pools = _group(sub, "pools", "资源池 Airflow pools")
    ps = pools.add_parser(
        "sync", help="create the pools hisops DAGs use (existing ones keep their slots)"
    )
    ps.set_defaults(func=_cmd_pools_sync)

    ev = _group(sub, "evidence", "等保证据包 evidence packs")
    el = ev.add_parser("list", help="list the monthly evidence packs with their SHA-256")
    _url_option(el)
    el.add_argument("--limit", type=int, default=24)
    el.set_defaults(func=_cmd_evidence_list)

    _proposals_parser(sub)
    aud = _group(sub, "audit", "审计 audit trail")
    av = aud.add_parser("verify", help="check the audit trail's hash chain (exit 1 when changed)")
    _url_option(av)
    av.set_defaults(func=_cmd_audit_verify)
    ae = aud.add_parser("export", help="export one month with its chain head (file 0600)")
    ae.add_argument("--month", required=True, help="YYYY-MM, in the inventory's timezone")
    ae.add_argument("--out", help="folder (default: <inventory reports.path>/audit)")
    ae.add_argument("--tz", help="timezone of the month (default: the inventory's)")
    _url_option(ae)
    ae.set_defaults(func=_cmd_audit_export)

    sec = _group(sub, "security", "安全审计 security audit")
    sa = sec.add_parser(
        "accept-drift", help="accept a target's drift as its new baseline (audited)"
    )
    sa.add_argument("--target", required=True, help="database or host id of the inventory")
    sa.add_argument("--item", required=True, choices=["roles", "grants", "sudoers"])
    sa.add_argument("--reason", required=True, help="why (e.g. the change request number)")
    sa.add_argument("--by", help="the person accepting (default: cli:<login>)")
    _url_option(sa)
    sa.set_defaults(func=_cmd_security_accept)

    demo = sub.add_parser("demo", help="演示环境 the one-command demo")
    demo.add_argument("action", choices=["up", "down", "clean", "status"])
    demo.set_defaults(func=_cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
