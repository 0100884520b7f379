"""The restore tests use the synthetic HIS databases and real backups of the drill tests."""

from tests.verify.conftest import his_db, make_backup, source_db  # noqa: F401 - shared fixtures
