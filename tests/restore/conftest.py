"""The restore tests use the synthetic HIS databases and real backups of the drill tests, and the
archiving cluster of the PITR tests."""

from tests.pitr.conftest import pitr_env  # noqa: F401 - archiving cluster + pgBackRest repository
from tests.verify.conftest import his_db, make_backup, source_db  # noqa: F401 - shared fixtures
