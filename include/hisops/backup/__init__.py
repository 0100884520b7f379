"""Backups with proof: pg_dump from an exported snapshot, manifest with
checksums, storage, retention.

Pure domain logic (no Airflow). ``manifest.py`` is the contract the verification side reads.
"""
