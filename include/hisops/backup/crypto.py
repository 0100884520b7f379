"""Encryption at rest: AES-256-GCM in a chunked streaming format (library: ``cryptography``).

File format ``AES-256-GCM-STREAM/1`` (suffix ``.enc``)::

    header  = b"HISOPSE1" | kdf_salt (16) | file_salt (16) | chunk_size (4, big endian)
              → 44 bytes
    chunk i = AES-256-GCM(file_key, nonce = i (11 bytes, big endian) | last (1 byte: 0/1),
                          plaintext[i*chunk_size : (i+1)*chunk_size], aad = header)
              → ≤ chunk_size+16 bytes

Keys
- The secret is the *password* of an Airflow connection (``encryption_conn_id`` in the inventory);
  it never appears in the inventory, the manifest, logs or XCom.
- A password of exactly 64 hex digits is used as the raw 256-bit master key (kdf ``raw``); any other
  password is a passphrase stretched with scrypt(n=2^15, r=8, p=1) over the backup's ``kdf_salt``.
- Each file gets its own key: HKDF-SHA256(master, salt=file_salt). Chunk counters and the "last"
  flag make reordering, truncation and appending detectable; any change fails the GCM tag.
- The manifest records ``key_conn_id`` and a non-secret ``key_id`` (to tell which key a backup
  needs). When the key is rotated, keep the old one (e.g. a connection ``hisops_backup_key_2025``):
  backups encrypted with it can only be restored with it. Losing the key means losing the backups.
- Without hisops: ``python -c 'from hisops.backup.crypto import decrypt_file ...'`` or any AES-GCM
  implementation following the format above; unencrypted backups need only stock ``pg_restore``.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

ALGORITHM = "AES-256-GCM-STREAM/1"
MAGIC = b"HISOPSE1"
HEADER = struct.Struct(">8s16s16sI")
TAG = 16
DEFAULT_CHUNK = 1024 * 1024
SCRYPT = {"n": 2**15, "r": 8, "p": 1}
KDF_SCRYPT = "scrypt-n32768-r8-p1"
KDF_RAW = "raw"


class DecryptionError(ValueError):
    """Wrong key, or the encrypted file was altered, truncated or is not an hisops .enc file."""


# --- keys -------------------------------------------------------------------------------------


def kdf_name(secret: str | bytes) -> str:
    return KDF_RAW if _raw_key(secret) is not None else KDF_SCRYPT


def _raw_key(secret: str | bytes) -> bytes | None:
    text = secret.decode() if isinstance(secret, bytes) else secret
    if len(text) == 64:
        try:
            return bytes.fromhex(text)
        except ValueError:
            return None
    return None


@lru_cache(maxsize=16)
def master_key(secret: str | bytes, kdf_salt: bytes) -> bytes:
    """256-bit master key from the connection password (cached: scrypt once per backup)."""
    if not secret:
        raise ValueError(
            "加密密钥为空 encryption key is empty (password of the encryption connection)"
        )
    raw = _raw_key(secret)
    if raw is not None:
        return raw
    data = secret.encode() if isinstance(secret, str) else secret
    return hashlib.scrypt(data, salt=kdf_salt, dklen=32, maxmem=64 * 1024 * 1024, **SCRYPT)


def key_id(secret: str | bytes, kdf_salt: bytes) -> str:
    """Non-secret fingerprint of the master key (16 hex digits)."""
    return _hkdf(master_key(secret, kdf_salt), b"", b"hisops-backup/1 key-id")[:8].hex()


def _hkdf(key: bytes, salt: bytes, info: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt or None, info=info).derive(key)


def _file_cipher(secret: str | bytes, kdf_salt: bytes, file_salt: bytes):
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(_hkdf(master_key(secret, kdf_salt), file_salt, b"hisops-backup/1 file"))


def _nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


# --- encrypt ----------------------------------------------------------------------------------


def encrypt_stream(
    src: BinaryIO,
    dst: BinaryIO,
    secret: str | bytes,
    kdf_salt: bytes,
    chunk_size: int = DEFAULT_CHUNK,
    on_write: Callable[[bytes], None] | None = None,
) -> int:
    """Encrypt ``src`` into ``dst`` chunk by chunk (memory: ~2 chunks); returns plaintext bytes.

    ``on_write`` sees every written piece (used to hash the stored file in the same pass)."""
    header = HEADER.pack(MAGIC, kdf_salt, os.urandom(16), chunk_size)
    aead = _file_cipher(secret, kdf_salt, header[24:40])
    emit = on_write or (lambda _b: None)
    dst.write(header)
    emit(header)
    total, index = 0, 0
    current = src.read(chunk_size)
    while True:
        following = src.read(chunk_size) if len(current) == chunk_size else b""
        last = not following
        sealed = aead.encrypt(_nonce(index, last), current, header)
        dst.write(sealed)
        emit(sealed)
        total += len(current)
        if last:
            return total
        current, index = following, index + 1


def encrypt_file(
    src: Path, dst: Path, secret: str | bytes, kdf_salt: bytes, chunk_size: int = DEFAULT_CHUNK
) -> tuple[int, int, str]:
    """Encrypt one file; returns (plain size, stored size, sha256 of the stored file)."""
    digest = hashlib.sha256()
    size = 0

    def seen(piece: bytes) -> None:
        nonlocal size
        digest.update(piece)
        size += len(piece)

    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
        plain = encrypt_stream(fin, fout, secret, kdf_salt, chunk_size, seen)
    return plain, size, digest.hexdigest()


# --- decrypt ----------------------------------------------------------------------------------


class DecryptingReader(io.RawIOBase):
    """A readable binary stream of the plaintext; raises DecryptionError on any tampering."""

    def __init__(self, raw: BinaryIO, secret: str | bytes, name: str = "") -> None:
        super().__init__()
        self._raw, self._name = raw, name
        self._header = raw.read(HEADER.size)
        if len(self._header) != HEADER.size:
            raise DecryptionError(
                f"不是加密备份文件 not an hisops encrypted file (short header): {name}"
            )
        magic, kdf_salt, file_salt, self._chunk = HEADER.unpack(self._header)
        if magic != MAGIC:
            raise DecryptionError(f"不是加密备份文件 not an hisops encrypted file: {name}")
        self._aead = _file_cipher(secret, kdf_salt, file_salt)
        self._index, self._done, self._buf = 0, False, b""
        self._pending = raw.read(self._chunk + TAG)

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> bytes:
        sealed, following = self._pending, self._raw.read(self._chunk + TAG)
        last = not following
        from cryptography.exceptions import InvalidTag

        try:
            plain = self._aead.decrypt(_nonce(self._index, last), sealed, self._header)
        except InvalidTag:
            raise DecryptionError(
                "解密失败（密钥错误或文件被篡改/截断）decryption failed (wrong key, or file "
                f"altered/truncated): {self._name} chunk {self._index}"
            ) from None
        self._pending, self._index, self._done = following, self._index + 1, last
        return plain

    def readinto(self, buffer) -> int:  # type: ignore[override]
        while not self._buf and not self._done:
            self._buf = self._next_chunk()
        n = min(len(buffer), len(self._buf))
        buffer[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


def open_decrypted(path: str | Path, key: str | bytes) -> io.BufferedReader:
    """Open an ``.enc`` file for reading its plaintext (streamed, bounded
    memory). ``key`` = the password."""
    raw = open(path, "rb")  # noqa: SIM115 - owned by the returned reader
    try:
        return io.BufferedReader(DecryptingReader(raw, key, str(path)), buffer_size=DEFAULT_CHUNK)
    except Exception:
        raw.close()
        raise


def decrypt_file(src: str | Path, dst: str | Path, key: str | bytes) -> int:
    """Decrypt one file to ``dst`` (mode 0600); returns plaintext bytes."""
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    total = 0
    with open_decrypted(src, key) as fin, os.fdopen(fd, "wb") as fout:
        while piece := fin.read(DEFAULT_CHUNK):
            fout.write(piece)
            total += len(piece)
    return total


def decrypt_tree(src_dir: str | Path, dst_dir: str | Path, key: str | bytes) -> list[Path]:
    """Copy a dump directory, decrypting ``*.enc`` (suffix removed) — e.g. before pg_restore."""
    src, dst = Path(src_dir), Path(dst_dir)
    out: list[Path] = []
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        rel = path.relative_to(src)
        target = dst / (rel.with_suffix("") if path.suffix == ".enc" else rel)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if path.suffix == ".enc":
            decrypt_file(path, target, key)
        else:
            _copy(path, target)
        out.append(target)
    return out


def _copy(src: Path, dst: Path) -> None:
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
        while piece := fin.read(DEFAULT_CHUNK):
            fout.write(piece)
