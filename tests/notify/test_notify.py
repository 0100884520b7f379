"""hisops.notify against REAL receivers: an aiosmtpd SMTP server (with AUTH) and an HTTP server.

Nothing is mocked: apprise really connects, logs in, sends MIME mail and POSTs JSON.
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import apprise
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from hisops.notify import (
    Channel,
    ChannelConfigError,
    bilingual,
    build_apprise_url,
    redact,
    scrub,
    send,
)

SMTP_USER = "hisops@hospital.example"
SMTP_PASS = (
    "p@ss/w:rd#%?"  # '@', '/', ':', '#', '%', '?' must all survive quoting (smtplib: ASCII only)
)
TITLE = bilingual("巡检异常：门诊数据库空间不足", "Inspection anomaly: outpatient DB storage low")
BODY = bilingual(
    "门诊系统 his_outpatient 表空间使用率 93%，请处理。",
    "his_outpatient storage at 93%, please act.",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- real receivers


@dataclass
class SmtpSink:
    host: str
    port: int
    messages: list[dict[str, Any]] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd API)
        self.messages.append(
            {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "raw": envelope.original_content,
            }
        )
        return "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = data.login.decode(), data.password.decode()
        self.logins.append((login, password))
        ok = (login, password) == (SMTP_USER, SMTP_PASS)
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink("127.0.0.1", free_port())
    controller = Controller(
        sink,
        hostname=sink.host,
        port=sink.port,
        authenticator=sink.authenticate,
        auth_require_tls=False,  # loopback test server: AUTH over plain SMTP
    )
    controller.start()
    yield sink
    controller.stop()


@dataclass
class HttpSink:
    port: int
    posts: list[dict[str, Any]] = field(default_factory=list)

    def url(self, path: str = "/hook") -> str:
        return f"json://127.0.0.1:{self.port}{path}"


@pytest.fixture
def http() -> Iterator[HttpSink]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    sink = HttpSink(server.server_address[1])
    server.sink = sink  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield sink
    server.shutdown()
    server.server_close()


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.sink.posts.append(  # type: ignore[attr-defined]
            {"path": self.path, "headers": dict(self.headers), "json": json.loads(raw)}
        )
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def email_channel(
    sink: SmtpSink, *, to: list[str], min_severity: str = "warn", name: str = "主管"
) -> Channel:
    url = build_apprise_url(
        "email",
        host=sink.host,
        port=sink.port,
        login=SMTP_USER,
        password=SMTP_PASS,
        extra={"disable_ssl": True, "disable_tls": True, "from_name": "hisops 运维平台"},
        to=to,
    )
    return Channel(name, "email", url, min_severity)


def parse_mail(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


# --------------------------------------------------------------------------- send(): delivery


def test_email_and_webhook_delivered_with_chinese_intact(smtp: SmtpSink, http: HttpSink) -> None:
    to = ["supervisor@hospital.example", "oncall@hospital.example"]
    channels = [email_channel(smtp, to=to), Channel("值班群 webhook", "webhook", http.url())]

    result = send(channels, TITLE, BODY, severity="critical")

    assert result.ok and result.sent == ["主管", "值班群 webhook"], result.outcomes
    assert smtp.logins == [(SMTP_USER, SMTP_PASS)]  # quoted credentials decoded back exactly
    # apprise sends one message per recipient (each sees only their own To:)
    assert sorted(m["to"] for m in smtp.messages) == [[t] for t in sorted(to)]
    for envelope in smtp.messages:
        assert envelope["from"] == SMTP_USER
        mail = parse_mail(envelope["raw"])
        assert mail["Subject"] == TITLE
        assert [a.addr_spec for a in mail["To"].addresses] == envelope["to"]
        assert mail["From"].addresses[0].display_name == "hisops 运维平台"
        assert BODY in mail.get_body(preferencelist=("plain",)).get_content()

    [post] = http.posts
    assert post["path"] == "/hook"
    assert post["json"]["title"] == TITLE and post["json"]["message"] == BODY
    assert post["json"]["type"] == "failure"  # critical → apprise failure type


def test_html_body_with_plain_text_alternative(
    smtp: SmtpSink, http: HttpSink, tmp_path: Path
) -> None:
    report = tmp_path / "巡检报告.html"
    report.write_text("<h1>巡检报告</h1>", encoding="utf-8")
    html = "<h2>巡检异常</h2><p>门诊数据库空间 <b>93%</b></p>"
    channels = [
        email_channel(smtp, to=["supervisor@hospital.example"]),
        Channel("hook", "webhook", http.url()),
    ]

    result = send(channels, TITLE, BODY, html=html, attachments=[report, tmp_path / "missing.pdf"])

    assert result.sent == ["主管", "hook"]
    assert result.missing_attachments == (str(tmp_path / "missing.pdf"),)
    mail = parse_mail(smtp.messages[0]["raw"])
    assert "<b>93%</b>" in mail.get_body(preferencelist=("html",)).get_content()
    assert "门诊数据库空间" in mail.get_body(preferencelist=("plain",)).get_content()
    [attached] = [p for p in mail.walk() if p.get_content_disposition() == "attachment"]
    assert attached.get_filename() == "巡检报告.html"
    assert (
        attached.get_payload(decode=True) == report.read_bytes()
    )  # bytes intact (no charset header)
    assert http.posts[0]["json"]["message"] == BODY  # text channels get the plain body


def test_min_severity_filters_channels(smtp: SmtpSink, http: HttpSink) -> None:
    channels = [
        email_channel(smtp, to=["supervisor@hospital.example"], min_severity="critical"),
        Channel("warn hook", "webhook", http.url("/warn"), "warn"),
        Channel("critical hook", "webhook", http.url("/critical"), "critical"),
    ]

    result = send(channels, TITLE, BODY, severity="warn")

    assert result.sent == ["warn hook"]
    assert result.skipped == ["主管", "critical hook"]
    assert [p["path"] for p in http.posts] == ["/warn"]
    assert smtp.messages == []
    assert send(channels, "一切正常 (All OK)", "ok", severity="ok").sent == []


def test_closed_port_fails_alone_and_reason_has_no_secret(smtp: SmtpSink, http: HttpSink) -> None:
    dead = free_port()
    broken_hook = build_apprise_url(
        "webhook",
        host="127.0.0.1",
        port=dead,
        login="hook",
        password="s3cr/et@pw",
        extra={"path": "/x"},
    )
    broken_mail = email_channel(
        SmtpSink("127.0.0.1", dead), to=["a@hospital.example"], name="dead smtp"
    )
    channels = [
        Channel("dead hook", "webhook", broken_hook),
        broken_mail,
        email_channel(smtp, to=["b@h.example"]),
    ]

    result = send(channels, TITLE, BODY)

    assert result.sent == ["主管"] and not result.ok
    assert set(result.failed) == {"dead hook", "dead smtp"}
    for reason in result.failed.values():
        assert reason
        for secret in (
            "s3cr/et@pw",
            quote("s3cr/et@pw", safe=""),
            SMTP_PASS,
            quote(SMTP_PASS, safe=""),
        ):
            assert secret not in reason
    assert len(smtp.messages) == 1


def test_wrong_smtp_password_is_a_failure_not_an_exception(smtp: SmtpSink) -> None:
    url = build_apprise_url(
        "email", host=smtp.host, port=smtp.port, login=SMTP_USER, password="wrong-pw",
        extra={"mode": "insecure"}, to=["a@hospital.example"],
    )  # fmt: skip
    result = send([Channel("mail", "email", url)], TITLE, BODY)
    assert result.failed.keys() == {"mail"} and "wrong-pw" not in result.failed["mail"]
    assert smtp.messages == []


def test_invalid_channel_url_reported_failed() -> None:
    result = send([Channel("bad", "wecom", "wecombot://not valid key!/")], TITLE, BODY)
    assert "bad" in result.failed and "not valid key" not in result.failed["bad"]


def test_unknown_severity_rejected() -> None:
    with pytest.raises(ValueError):
        send([], TITLE, BODY, severity="fatal")
    with pytest.raises(ValueError):
        Channel("x", "email", "mailto://x", min_severity="info")
    with pytest.raises(ValueError):
        Channel("x", "sms", "mailto://x")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- URLs, redaction


def _parsed(url: str) -> Any:
    plugin = apprise.Apprise.instantiate(url)
    assert plugin is not None, redact(url)
    return plugin


def test_email_url_quotes_credentials_and_lists_recipients() -> None:
    url = build_apprise_url(
        "email", host="smtp.hospital.example", port=465, login="ops@hospital.example",
        password="a@b/c:d%e", to=["x@hospital.example", "y@hospital.example"],
    )  # fmt: skip
    assert url.startswith(
        "mailtos://ops%40hospital.example:a%40b%2Fc%3Ad%25e@smtp.hospital.example:465/"
    )
    p = _parsed(url)
    assert (p.user, p.password, p.smtp_host, p.port) == (
        "ops@hospital.example",
        "a@b/c:d%e",
        "smtp.hospital.example",
        465,
    )
    assert p.secure_mode == "ssl"  # Airflow SMTP provider default: SSL unless disable_ssl
    assert [t[1] for t in p.targets] == ["x@hospital.example", "y@hospital.example"]
    assert p.from_addr[1] == "ops@hospital.example"


@pytest.mark.parametrize(
    ("extra", "scheme", "mode"),
    [
        ({"disable_ssl": True}, "mailtos", "starttls"),
        ({"disable_ssl": "true", "disable_tls": "true"}, "mailto", "insecure"),
        ({"mode": "starttls", "disable_ssl": False}, "mailtos", "starttls"),
    ],
)
def test_email_secure_mode_from_extra(extra: dict, scheme: str, mode: str) -> None:
    url = build_apprise_url(
        "email",
        host="relay.local",
        extra={"from_email": "his@h.example", **extra},
        to=["a@h.example"],
    )
    assert url.startswith(f"{scheme}://")
    assert _parsed(url).secure_mode == mode


def test_email_needs_recipients_and_sender() -> None:
    with pytest.raises(ChannelConfigError, match="recipients"):
        build_apprise_url("email", host="relay", extra={"from_email": "a@b.example"}, to=[])
    with pytest.raises(ChannelConfigError, match="from_email"):
        build_apprise_url("email", host="relay", login="relayuser", to=["a@b.example"])


def test_wecom_url_from_key_or_full_webhook() -> None:
    assert build_apprise_url("wecom", password="abcd-EF_12") == "wecombot://abcd-EF_12/"
    full = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abcd-EF_12"
    url = build_apprise_url("wecom", password=full)
    assert url == "wecombot://abcd-EF_12/" and _parsed(url).key == "abcd-EF_12"
    with pytest.raises(ChannelConfigError):
        build_apprise_url("wecom")


def test_dingtalk_url_with_secret_and_phones() -> None:
    url = build_apprise_url(
        "dingtalk", password="0a1b2c3d4e", extra={"secret": "SEC9f8e7d"}, to=["13800000000"]
    )
    assert url == "dingtalk://SEC9f8e7d@0a1b2c3d4e/13800000000/"
    p = _parsed(url)
    assert (p.token, p.secret) == ("0a1b2c3d4e", "SEC9f8e7d")
    full = "https://oapi.dingtalk.com/robot/send?access_token=0a1b2c3d4e"
    assert build_apprise_url("dingtalk", password=full) == "dingtalk://0a1b2c3d4e/"


def test_webhook_url_built_or_taken_from_extra() -> None:
    url = build_apprise_url(
        "webhook", host="hooks.hospital.example", port=8443, schema="https", login="bot",
        password="x/y@z",
        extra={"path": "/alerts/his", "headers": {"Authorization": "Bearer t0k en"}},
    )  # fmt: skip
    assert url.startswith("jsons://bot:x%2Fy%40z@hooks.hospital.example:8443/alerts/his?")
    p = _parsed(url)
    assert (p.user, p.password, p.fullpath, p.headers) == (
        "bot",
        "x/y@z",
        "/alerts/his",
        {"Authorization": "Bearer t0k en"},
    )
    assert (
        build_apprise_url("webhook", host="http://10.1.2.3:8080/hook")
        == "json://10.1.2.3:8080/hook"
    )
    custom = "ntfys://ops-topic"
    assert build_apprise_url("webhook", host="ignored", extra={"apprise_url": custom}) == custom


def test_redact_hides_every_secret() -> None:
    mail = build_apprise_url(
        "email",
        host="smtp.h.example",
        login="ops@h.example",
        password="p@ss/word",
        to=["a@h.example"],
    )
    shown = redact(mail)
    assert "p%40ss" not in shown and "p@ss" not in shown and "****" in shown
    assert "smtp.h.example" in shown and "a%40h.example" in shown  # the useful parts stay
    assert redact(build_apprise_url("wecom", password="KEY123")) == "wecombot://****"
    assert redact("dingtalk://SEC9f8e7d@0a1b2c3d4e/13800000000/") == "dingtalk://****"
    hook = redact(
        "jsons://u:pw@h.example/hooks/T0/B0/SECRET?+Authorization=Bearer%20abc&format=text"
    )
    assert "SECRET" not in hook and "abc" not in hook and "pw" not in hook and "format=text" in hook
    assert "p%40ss" not in repr(Channel("c", "email", mail))  # repr never shows the secret


def test_scrub_removes_raw_and_quoted_secrets() -> None:
    url = "mailtos://ops:p%40ss%2Fw@smtp.h.example/a%40h.example"
    assert scrub("login p@ss/w failed (p%40ss%2Fw)", url) == "login **** failed (****)"


def test_bilingual() -> None:
    assert bilingual("巡检完成", "Inspection done") == "巡检完成 (Inspection done)"
    assert (
        bilingual("第一行\n第二行", "line one\nline two") == "第一行\n第二行\n\nline one\nline two"
    )
    assert bilingual("仅中文", "") == "仅中文"


# --------------------------------------------------------------------------- Airflow glue


def _item(conn_id: str, kind: str = "email", **kw: Any) -> SimpleNamespace:
    return SimpleNamespace(
        name=kw.pop("name", "信息科主管"),
        kind=kind,
        conn_id=conn_id,
        to=kw.pop("to", ["supervisor@hospital.example"]),
        min_severity=kw.pop("min_severity", "warn"),
    )


def test_glue_resolves_uri_connection_and_delivers(
    monkeypatch: pytest.MonkeyPatch, smtp: SmtpSink
) -> None:
    from hisops.airflow.notify_glue import channels_from_inventory

    login, password = quote(SMTP_USER, safe=""), quote(SMTP_PASS, safe="")
    uri = f"smtp://{login}:{password}@{smtp.host}:{smtp.port}?disable_ssl=true&disable_tls=true"
    monkeypatch.setenv("AIRFLOW_CONN_HISOPS_SMTP_TEST", uri)

    [channel] = channels_from_inventory([_item("hisops_smtp_test", min_severity="critical")])

    assert (channel.name, channel.kind, channel.min_severity) == ("信息科主管", "email", "critical")
    assert SMTP_PASS not in repr(channel)
    result = send([channel], TITLE, BODY, severity="critical")
    assert result.sent == ["信息科主管"], result.failed
    assert smtp.logins == [(SMTP_USER, SMTP_PASS)]
    assert smtp.messages[0]["to"] == ["supervisor@hospital.example"]


def test_glue_resolves_json_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    from hisops.airflow.notify_glue import channels_from_inventory

    wecom = {
        "conn_type": "generic",
        "password": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc-123",
    }
    hook = {
        "conn_type": "http",
        "host": "hooks.h.example",
        "schema": "https",
        "login": "bot",
        "password": "x/y@z",
        "extra": {"path": "/his"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_HISOPS_WECOM_TEST", json.dumps(wecom))
    monkeypatch.setenv("AIRFLOW_CONN_HISOPS_HOOK_TEST", json.dumps(hook))
    items = [
        _item("hisops_wecom_test", "wecom", name="值班群", to=[]),
        {
            "name": "hook",
            "kind": "webhook",
            "conn_id": "hisops_hook_test",
            "to": [],
            "min_severity": None,
        },
    ]

    wecom_ch, hook_ch = channels_from_inventory(items)

    assert wecom_ch.apprise_url == "wecombot://abc-123/"
    assert hook_ch.apprise_url == "jsons://bot:x%2Fy%40z@hooks.h.example/his"
    assert hook_ch.min_severity == "warn"


def test_glue_missing_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    from hisops.airflow.notify_glue import channels_from_inventory

    monkeypatch.setenv(
        "AIRFLOW_CONN_HISOPS_OK_TEST", json.dumps({"conn_type": "generic", "password": "k1"})
    )
    items = [_item("hisops_no_such_conn", "wecom"), _item("hisops_ok_test", "wecom", name="ok")]
    with pytest.raises(ChannelConfigError, match="hisops_no_such_conn"):
        channels_from_inventory(items)
    assert [c.name for c in channels_from_inventory(items, strict=False)] == ["ok"]


def test_mail_keeps_line_breaks_in_both_parts(smtp: SmtpSink) -> None:
    body = "数据库 database: his_emr\n- 文件缺失 missing file: dump/toc.dat\n事件 incident: #7"
    result = send(
        [email_channel(smtp, to=["supervisor@hospital.example"])], TITLE, body, severity="critical"
    )

    assert result.ok, result.outcomes
    mail = parse_mail(smtp.messages[0]["raw"])
    plain = mail.get_body(preferencelist=("plain",)).get_content()
    assert "his_emr\n- 文件缺失" in plain.replace(
        "\r\n", "\n"
    ) and "dump/toc.dat\n事件" in plain.replace("\r\n", "\n")
    html_part = mail.get_body(preferencelist=("html",))
    if html_part is not None:  # an HTML part must show the breaks, not a raw newline run together
        content = html_part.get_content()
        assert content.count("<br") >= 2 or content.count("<p") >= 3 or "<pre" in content, content
