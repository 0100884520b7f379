"""Application checks (应用巡检): HTTP(S) status, latency, expected text, TLS certificate.

One GET per endpoint (httpx, the endpoint's timeout for connect/read/write/pool, redirects
followed, body read up to 1 MB for the text check) plus, for https, one TLS handshake of our own
to read the certificate (``ssl`` + ``getpeercert(binary_form=True)``, parsed by cryptography),
so an expired or self-signed certificate is *measured* rather than only failing the request.

When ``verify_tls`` is on and verification fails, the request is repeated without
verification: the status/latency/text findings then describe the service, and the
``http.tls_days`` finding carries the certificate problem (critical) — one cause, one finding.
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from hisops.catalog.records import FindingRecord
from hisops.inspect.findings import Target, classify, worst

MAX_BODY = 1024 * 1024


@dataclass(frozen=True)
class Fetch:
    status: int | None = None
    elapsed: float = 0.0
    text: str = ""
    error: str | None = None
    tls_rejected: str | None = None  # verification error that forced the unverified retry


@dataclass(frozen=True)
class PeerCert:
    not_after: datetime | None = None
    subject: str = ""
    issuer: str = ""
    verify_error: str | None = None  # None: the default trust store accepts it (and the host name)
    error: str | None = None  # no certificate at all (no TLS, refused)


def _is_cert_error(exc: BaseException) -> str | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen.verify_message or str(seen)
        if "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    return None


def _get(url: str, timeout: float, verify: bool) -> tuple[int, str, float]:
    import httpx

    with httpx.Client(timeout=timeout, verify=verify, follow_redirects=True) as client:
        start = time.perf_counter()  # the request only, not loading the CA bundle
        with client.stream("GET", url, headers={"User-Agent": "hisops-inspect"}) as resp:
            body = b""
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) >= MAX_BODY:
                    break
            elapsed = time.perf_counter() - start
            return resp.status_code, body.decode(resp.encoding or "utf-8", "replace"), elapsed


def fetch(url: str, timeout: float, verify: bool) -> Fetch:
    """GET the URL; never raises (errors are in ``Fetch.error``)."""
    import httpx

    try:
        status, text, elapsed = _get(url, timeout, verify)
        return Fetch(status, elapsed, text)
    except httpx.TimeoutException:
        return Fetch(error=f"timed out after {timeout:g} s")
    except (httpx.HTTPError, OSError, ssl.SSLError) as exc:
        cert_error = _is_cert_error(exc)
        if cert_error and verify:
            retry = fetch(url, timeout, verify=False)
            return Fetch(
                retry.status, retry.elapsed, retry.text, retry.error, tls_rejected=cert_error
            )
        return Fetch(error=f"{type(exc).__name__}: {exc}"[:300])


def _handshake(host: str, port: int, timeout: float, ctx: ssl.SSLContext) -> bytes:
    with (
        socket.create_connection((host, port), timeout=timeout) as sock,
        ctx.wrap_socket(sock, server_hostname=host) as tls,
    ):
        return tls.getpeercert(binary_form=True) or b""


def peer_certificate(host: str, port: int, timeout: float) -> PeerCert:
    """The server's certificate and whether the default trust store (and host name) accept it."""
    verify_error = None
    try:
        der = _handshake(host, port, timeout, ssl.create_default_context())
    except ssl.SSLCertVerificationError as exc:
        verify_error = exc.verify_message or str(exc)
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        try:
            der = _handshake(host, port, timeout, insecure)
        except (OSError, ssl.SSLError) as exc2:
            return PeerCert(error=f"{type(exc2).__name__}: {exc2}", verify_error=verify_error)
    except (OSError, ssl.SSLError) as exc:
        return PeerCert(error=f"{type(exc).__name__}: {exc}")
    return _parse_cert(der, verify_error)


def _parse_cert(der: bytes, verify_error: str | None) -> PeerCert:
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    return PeerCert(
        cert.not_valid_after_utc,
        cert.subject.rfc4514_string(),
        cert.issuer.rfc4514_string(),
        verify_error,
    )


def check_status(t: Target, endpoint: Any, got: Fetch) -> FindingRecord:
    expect = endpoint.expect_status
    if got.status is None:
        return t.make(
            "http.status",
            "critical",
            None,
            f"expect {expect}",
            value_text="down",
            zh=f"无法访问 {endpoint.url}：{got.error}",
            en=f"{endpoint.url} unreachable: {got.error}",
            url=endpoint.url,
            error=got.error,
        )
    ok = got.status == expect
    return t.make(
        "http.status",
        "ok" if ok else "critical",
        got.status,
        f"expect {expect}",
        value_text=str(got.status),
        zh=f"{endpoint.url} 返回 {got.status}" + ("" if ok else f"（应为 {expect}）"),
        en=f"{endpoint.url} answered {got.status}" + ("" if ok else f" (expected {expect})"),
        url=endpoint.url,
        tls_rejected=got.tls_rejected,
    )


def check_latency(t: Target, endpoint: Any, got: Fetch) -> FindingRecord:
    level = t.thresholds.http_latency_seconds
    elapsed = round(got.elapsed, 4)
    return t.make(
        "http.latency",
        classify(level, elapsed),
        elapsed,
        level,
        unit=" s",
        zh=f"响应时间 {elapsed:.3f} 秒",
        en=f"response time {elapsed:.3f} s",
        metrics={"http_latency_seconds": elapsed},
    )


def check_text(t: Target, endpoint: Any, got: Fetch) -> FindingRecord:
    want = endpoint.expect_text
    found = want in got.text
    return t.make(
        "http.text",
        "ok" if found else "critical",
        None,
        f"contains {want!r}",
        value_text="found" if found else "missing",
        zh=f"页面{'包含' if found else '不包含'}预期文本 {want!r}",
        en=f"the page {'contains' if found else 'lacks'} the expected text {want!r}",
    )


def check_tls(t: Target, endpoint: Any, cert: PeerCert) -> FindingRecord:
    level = t.thresholds.tls_days_left
    days = (cert.not_after - t.observed_at).total_seconds() / 86400
    severity = classify(level, days)
    untrusted = cert.verify_error is not None
    if untrusted and endpoint.verify_tls:
        severity = worst(severity, "critical")
    state_zh = "已过期" if days < 0 else f"剩余 {days:.1f} 天"
    state_en = f"expired {-days:.1f} days ago" if days < 0 else f"{days:.1f} days left"
    trust_zh = f"；证书不受信任：{cert.verify_error}" if untrusted else ""
    trust_en = f"; certificate not trusted: {cert.verify_error}" if untrusted else ""
    return t.make(
        "http.tls_days",
        severity,
        round(days, 2),
        level,
        unit=" d",
        value_text=state_en,
        zh=f"TLS 证书{state_zh}（到期 {t.when(cert.not_after)}）{trust_zh}",
        en=f"TLS certificate {state_en} (expires {t.when(cert.not_after)}){trust_en}",
        not_after=cert.not_after,
        subject=cert.subject,
        issuer=cert.issuer,
        verify_error=cert.verify_error,
        verify_tls=endpoint.verify_tls,
        metrics={"tls_days_left": days},
    )


def evaluate(t: Target, endpoint: Any) -> list[FindingRecord]:
    """All findings of one endpoint; a check that raises is a
    check_error, the others still report."""
    got = fetch(endpoint.url, endpoint.timeout_s, endpoint.verify_tls)
    steps: list[tuple[str, Any]] = [("http.status", lambda: check_status(t, endpoint, got))]
    if got.status is not None:
        steps.append(("http.latency", lambda: check_latency(t, endpoint, got)))
        if endpoint.expect_text is not None:
            steps.append(("http.text", lambda: check_text(t, endpoint, got)))
    parts = urlsplit(endpoint.url)
    if parts.scheme == "https":
        steps.append(("http.tls_days", lambda: _tls_step(t, endpoint, parts)))
    out: list[FindingRecord] = []
    for check_id, step in steps:
        out += t.guarded(check_id, step)
    return out


def _tls_step(t: Target, endpoint: Any, parts: Any) -> FindingRecord | None:
    cert = peer_certificate(parts.hostname, parts.port or 443, endpoint.timeout_s)
    if cert.error:  # no TLS session at all: http.status already says the endpoint is down
        return None
    return check_tls(t, endpoint, cert)
