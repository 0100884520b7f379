"""Manifest contract and encryption at rest (no database needed)."""

from __future__ import annotations

import io
import json
import os
from datetime import UTC, datetime

import pytest
from hisops.backup import crypto
from hisops.backup.manifest import (
    FileEntry,
    Manifest,
    ManifestError,
    Options,
    Source,
    Timings,
    Tool,
    asset_uri,
    backup_dir_name,
    load_manifest,
    manifest_sha256,
    parse_backup_dir_name,
    sha256_file,
    verify_files,
)

KEY = "correct horse battery staple"


def _backup(tmp_path, files: dict[str, bytes]) -> tuple:
    root = tmp_path / "b"
    entries = []
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        size, digest = sha256_file(root / rel)
        entries.append(FileEntry(path=rel, size=size, sha256=digest))
    now = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)
    m = Manifest(
        backup_id=5,
        kind="database",
        database_id="his_emr",
        created_at=now,
        finished_at=now,
        source=Source(host="h", port=5432, dbname="emr"),
        tool=Tool(),
        options=Options(jobs=2, compress=5),
        files=entries,
        timings=Timings(),
        size_bytes=sum(e.size for e in entries),
    )
    (root / "manifest.json").write_text(m.to_json())
    return root, m


def test_manifest_round_trip_and_sha(tmp_path):
    root, m = _backup(tmp_path, {"dump/toc.dat": b"toc", "dump/1.dat.gz": os.urandom(3000)})
    loaded = load_manifest(root)
    assert loaded == m and loaded.format == "hisops-backup/1"
    assert json.loads((root / "manifest.json").read_text())["schema"] is None  # alias, not schema_
    assert manifest_sha256(root) == sha256_file(root / "manifest.json")[1]
    assert verify_files(root, loaded) == []


def test_verify_files_names_each_bad_file(tmp_path):
    root, m = _backup(
        tmp_path, {"dump/a.dat": b"a" * 100, "dump/b.dat": b"b" * 100, "dump/c.dat": b"c" * 10}
    )
    data = bytearray((root / "dump/a.dat").read_bytes())
    data[50] ^= 0x01  # one bit flipped, same size
    (root / "dump/a.dat").write_bytes(bytes(data))
    (root / "dump/b.dat").unlink()
    (root / "dump/c.dat").write_bytes(b"c" * 11)
    (root / "dump/stray.dat").write_bytes(b"x")
    problems = verify_files(root, m)
    assert len(problems) == 4
    assert any("checksum mismatch: dump/a.dat" in p for p in problems)
    assert any("missing file: dump/b.dat" in p for p in problems)
    assert any("size mismatch: dump/c.dat" in p for p in problems)
    assert any("unexpected file: dump/stray.dat" in p for p in problems)


def test_load_manifest_rejects_missing_or_foreign(tmp_path):
    with pytest.raises(ManifestError, match="not readable"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "other"}')
    with pytest.raises(ManifestError, match="not a hisops-backup/1"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "hisops-backup/1", "backup_id": 1}')
    with pytest.raises(ManifestError, match="incomplete"):
        load_manifest(tmp_path)


def test_dir_names_and_asset_uri():
    when = datetime(2026, 3, 1, 17, 5, 9, tzinfo=UTC)
    assert backup_dir_name(when, 42) == "20260301T170509Z-42"
    assert parse_backup_dir_name("20260301T170509Z-42") == (when, 42)
    assert (
        parse_backup_dir_name(".partial-42") is None and parse_backup_dir_name("20260301-x") is None
    )
    assert asset_uri("his_emr") == "hisops://backup/his_emr"


@pytest.mark.parametrize(
    "size",
    [
        0,
        1,
        crypto.DEFAULT_CHUNK - 1,
        crypto.DEFAULT_CHUNK,
        2 * crypto.DEFAULT_CHUNK,
        2 * crypto.DEFAULT_CHUNK + 17,
    ],
)
def test_encryption_round_trip(tmp_path, size):
    data = os.urandom(size)
    (tmp_path / "p").write_bytes(data)
    salt = os.urandom(16)
    plain, stored, digest = crypto.encrypt_file(tmp_path / "p", tmp_path / "p.enc", KEY, salt)
    assert plain == size and stored == (tmp_path / "p.enc").stat().st_size
    assert digest == sha256_file(tmp_path / "p.enc")[1]
    assert (tmp_path / "p.enc").stat().st_mode & 0o777 == 0o600
    assert size < 64 or data[:64] not in (tmp_path / "p.enc").read_bytes()
    with crypto.open_decrypted(tmp_path / "p.enc", KEY) as fh:
        assert fh.read() == data


def test_wrong_key_tamper_truncation_and_reordering_are_detected(tmp_path):
    data = os.urandom(3 * crypto.DEFAULT_CHUNK + 5)
    (tmp_path / "p").write_bytes(data)
    crypto.encrypt_file(tmp_path / "p", tmp_path / "p.enc", KEY, b"s" * 16)
    blob = (tmp_path / "p.enc").read_bytes()
    with pytest.raises(crypto.DecryptionError, match="wrong key"):
        crypto.open_decrypted(tmp_path / "p.enc", "not the key").read()
    header, chunk = crypto.HEADER.size, crypto.DEFAULT_CHUNK + crypto.TAG
    flipped = bytearray(blob)
    flipped[header + 10] ^= 1
    cases = {
        "flipped": bytes(flipped),
        "truncated": blob[: header + 2 * chunk],  # whole chunks missing at the end
        "swapped": blob[:header]
        + blob[header + chunk : header + 2 * chunk]
        + blob[header : header + chunk]
        + blob[header + 2 * chunk :],
        "not-enc": b"PGDMP" + blob[5:],
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(crypto.DecryptionError):
            crypto.open_decrypted(tmp_path / name, KEY).read()


def test_raw_hex_key_and_key_id(tmp_path):
    hexkey = os.urandom(32).hex()
    assert crypto.kdf_name(hexkey) == "raw" and crypto.kdf_name(KEY) == crypto.KDF_SCRYPT
    salt = os.urandom(16)
    assert crypto.key_id(KEY, salt) == crypto.key_id(KEY, salt) != crypto.key_id("other", salt)
    src = io.BytesIO(b"hello" * 1000)
    out = io.BytesIO()
    crypto.encrypt_stream(src, out, hexkey, salt)
    (tmp_path / "x.enc").write_bytes(out.getvalue())
    assert crypto.open_decrypted(tmp_path / "x.enc", hexkey).read() == b"hello" * 1000


def test_decrypt_tree_restores_plain_layout(tmp_path):
    src = tmp_path / "dump"
    src.mkdir()
    (tmp_path / "plain").mkdir()
    for name, data in {"toc.dat": b"T" * 10, "3001.dat.gz": os.urandom(5000)}.items():
        (tmp_path / "plain" / name).write_bytes(data)
        crypto.encrypt_file(tmp_path / "plain" / name, src / f"{name}.enc", KEY, b"k" * 16)
    out = crypto.decrypt_tree(src, tmp_path / "out", KEY)
    assert sorted(p.name for p in out) == ["3001.dat.gz", "toc.dat"]
    for p in out:
        assert p.read_bytes() == (tmp_path / "plain" / p.name).read_bytes()
