"""Fixtures shared with the capability tests the DAG tests build on."""

from tests.pitr.conftest import pitr_env  # noqa: F401 - the archiving cluster of the PITR tests
