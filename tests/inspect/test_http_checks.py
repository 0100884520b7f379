"""HTTP(S) endpoint checks against real local servers: slow,
failing, expired and self-signed TLS."""

from __future__ import annotations

import ipaddress
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from hisops.inspect.engine import inspect_endpoint, metrics_from
from hisops.inventory.thresholds import Thresholds

from tests.inspect.conftest import by_id, endpoint, system, thresholds


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        parts = urlsplit(self.path)
        if parts.path == "/slow":
            time.sleep(float(parse_qs(parts.query)["s"][0]))
        status = int(parts.path.rsplit("/", 1)[1]) if parts.path.startswith("/status/") else 200
        body = "欢迎使用 hisops 门诊系统 OK".encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            pass

    def log_message(self, *args) -> None:
        return None


def serve(tls: ssl.SSLContext | None = None) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    scheme = "https" if tls else "http"
    return server, f"{scheme}://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def http_url() -> Iterator[str]:
    server, url = serve()
    yield url
    server.shutdown()


def make_cert(folder: Path, not_before: datetime, not_after: datetime) -> ssl.SSLContext:
    """A self-signed certificate for 127.0.0.1, valid in [not_before, not_after]."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hisops test 127.0.0.1")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_file, key_file)
    return ctx


@pytest.fixture
def tls_server(tmp_path) -> Iterator[Callable[[float], tuple[str, datetime]]]:
    """Factory: an HTTPS server whose certificate expires in ``days`` (negative: expired)."""
    servers = []

    def start(days: float) -> tuple[str, datetime]:
        now = datetime.now(UTC).replace(microsecond=0)
        not_after = now + timedelta(days=days)
        folder = tmp_path / f"cert{len(servers)}"
        folder.mkdir()
        server, url = serve(make_cert(folder, now - timedelta(days=400), not_after))
        servers.append(server)
        return url, not_after

    yield start
    for server in servers:
        server.shutdown()


def check(url: str, th: Thresholds | None = None, **kw) -> dict:
    ep = endpoint(url, **kw)
    return by_id(inspect_endpoint(system(endpoints=[ep]), ep, th or Thresholds()))


def test_healthy_endpoint(http_url):
    start = time.perf_counter()
    found = check(f"{http_url}/ok", expect_text="门诊系统")
    wall = time.perf_counter() - start
    assert set(found) == {"http.status", "http.latency", "http.text"}
    assert found["http.status"].severity == "ok" and found["http.status"].value == 200
    assert found["http.text"].severity == "ok"
    assert 0 < found["http.latency"].value <= wall and found["http.latency"].severity == "ok"
    assert ("his-web", "http_latency_seconds", found["http.latency"].value) in metrics_from(
        list(found.values())
    )


def test_wrong_status_and_missing_text_are_critical(http_url):
    found = check(f"{http_url}/status/503", expect_text="不存在的文本")
    assert found["http.status"].severity == "critical" and found["http.status"].value == 503
    assert found["http.text"].severity == "critical"
    assert found["http.status"].suggestion_zh


def test_endpoint_timing_out(http_url):
    start = time.perf_counter()
    found = check(f"{http_url}/slow?s=3", timeout_s=0.5)
    assert time.perf_counter() - start < 2.5
    assert list(found) == ["http.status"]
    assert (
        found["http.status"].severity == "critical"
        and "timed out" in found["http.status"].message_en
    )


def test_slow_endpoint_warns(http_url):
    found = check(f"{http_url}/slow?s=0.3", thresholds(http_latency_seconds={"warn": 0.2}))
    assert found["http.latency"].severity == "warn" and found["http.latency"].value >= 0.3


def test_connection_refused():
    from tests.conftest import free_port

    found = check(f"https://127.0.0.1:{free_port()}/")
    assert list(found) == ["http.status"] and found["http.status"].severity == "critical"


def test_expired_certificate_is_a_critical_tls_finding(tls_server):
    url, not_after = tls_server(-2)
    found = check(f"{url}/ok")
    tls = found["http.tls_days"]
    expected_days = (not_after - tls.observed_at).total_seconds() / 86400
    assert tls.severity == "critical" and tls.value == pytest.approx(expected_days, abs=0.01)
    assert tls.value < 0 and "已过期" in tls.message_zh and tls.details["verify_error"]
    status = found["http.status"]  # the service itself still answers
    assert status.severity == "ok" and status.details["tls_rejected"]


def test_self_signed_certificate_trust_depends_on_verify_tls(tls_server):
    url, not_after = tls_server(100)
    lenient = check(f"{url}/ok", verify_tls=False)["http.tls_days"]
    expected = (not_after - lenient.observed_at).total_seconds() / 86400
    assert lenient.severity == "ok" and lenient.value == pytest.approx(expected, abs=0.01)
    strict = check(f"{url}/ok")["http.tls_days"]
    assert strict.severity == "critical" and "self-signed" in strict.details["verify_error"]
    assert "不受信任" in strict.message_zh


@pytest.mark.parametrize(("days", "severity"), [(10, "warn"), (2, "critical"), (30, "ok")])
def test_certificate_close_to_expiry(tls_server, days, severity):
    url, _ = tls_server(days)
    assert check(f"{url}/ok", verify_tls=False)["http.tls_days"].severity == severity
