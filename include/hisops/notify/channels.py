"""Notification channels: who is told, and the apprise URL that reaches them.

Pure domain code (no Airflow). A :class:`Channel` carries a ready apprise URL; the URL
holds credentials, so it is never logged — use :func:`redact` whenever it must be shown.

:func:`build_apprise_url` turns the fields of a connection (host, port, login, password,
schema, extra) into that URL, one builder per ``kind``:

* ``email``    — ``mailto://`` / ``mailtos://`` to an SMTP relay. Extra fields follow the
  Airflow SMTP provider: ``from_email``, ``disable_ssl``, ``disable_tls``; plus the apprise
  names ``mode`` (ssl | starttls | insecure), ``from_name`` and ``timeout`` (seconds).
* ``wecom``    — 企业微信群机器人 ``wecombot://KEY``; the key (or the whole webhook URL) is the
  connection password (or extra ``key``).
* ``dingtalk`` — 钉钉群机器人 ``dingtalk://[SECRET@]TOKEN/[phones…]``; the access token (or the
  whole webhook URL) is the password (or extra ``token``), the 加签 secret is extra ``secret``.
* ``webhook``  — extra ``apprise_url`` is used as is (any apprise service); otherwise
  ``json://`` / ``jsons://`` built from host, port, schema (http/https), extra ``path`` and
  ``headers``, with login/password as HTTP basic auth.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args
from urllib.parse import parse_qs, parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

Kind = Literal["email", "wecom", "dingtalk", "webhook"]
Severity = Literal["ok", "warn", "critical"]

KINDS: tuple[str, ...] = get_args(Kind)
SEVERITIES: tuple[str, ...] = get_args(Severity)  # ordered: ok < warn < critical

_MASK = "****"
# Query parameters whose value is a secret (apprise names plus common ones).
_SECRET_PARAMS = frozenset(
    {
        "pass",
        "password",
        "pwd",
        "secret",
        "token",
        "key",
        "apikey",
        "api_key",
        "access_token",
        "webhook",
    }
)
# Schemes whose host is not secret: e-mail (path = recipients, shown) and generic webhooks
# (path hidden: webhook paths often embed a token, e.g. /hooks/T000/B000/XXXX).
_EMAIL_SCHEMES = frozenset({"mailto", "mailtos"})
_WEBHOOK_SCHEMES = frozenset({"json", "jsons", "xml", "xmls", "form", "forms"})


class ChannelConfigError(ValueError):
    """A channel cannot be built from the given connection fields (message holds no secret)."""


def severity_rank(severity: str) -> int:
    """Position of ``severity`` in ok < warn < critical; ValueError for anything else."""
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        raise ValueError(f"unknown severity {severity!r}; expected one of {SEVERITIES}") from None


@dataclass(frozen=True)
class Channel:
    """One recipient channel. ``apprise_url`` contains secrets: never log it, use :func:`redact`."""

    name: str
    kind: Kind
    apprise_url: str
    min_severity: str = "warn"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(
                f"channel {self.name!r}: unknown kind {self.kind!r}; expected one of {KINDS}"
            )
        severity_rank(self.min_severity)

    def __repr__(self) -> str:  # the dataclass default would print the secret URL
        return (
            f"Channel(name={self.name!r}, kind={self.kind!r}, "
            f"apprise_url={redact(self.apprise_url)!r}, min_severity={self.min_severity!r})"
        )

    def accepts(self, severity: str) -> bool:
        """True if a message of ``severity`` is to be delivered on this channel."""
        return severity_rank(severity) >= severity_rank(self.min_severity)


def bilingual(zh: str, en: str) -> str:
    """The house convention: Chinese first, English alongside (``"巡检异常 (Inspection anomaly)"``).

    Multi-line texts are stacked (Chinese block, blank line, English block) instead.
    """
    zh, en = zh.strip(), en.strip()
    if not en or en == zh:
        return zh
    if not zh:
        return en
    if "\n" in zh or "\n" in en:
        return f"{zh}\n\n{en}"
    return f"{zh} ({en})"


# --------------------------------------------------------------------------- URL building


def build_apprise_url(
    kind: str,
    *,
    host: str | None = None,
    port: int | None = None,
    login: str | None = None,
    password: str | None = None,
    schema: str | None = None,
    extra: Mapping[str, Any] | None = None,
    to: Iterable[str] = (),
) -> str:
    """The apprise URL for a channel of ``kind`` from connection fields (credentials quoted)."""
    builders = {
        "email": _email_url,
        "wecom": _wecom_url,
        "dingtalk": _dingtalk_url,
        "webhook": _webhook_url,
    }
    if kind not in builders:
        raise ChannelConfigError(f"unknown channel kind {kind!r}; expected one of {KINDS}")
    fields = _Fields(
        host or "", port, login or "", password or "", schema or "", dict(extra or {}), list(to)
    )
    return builders[kind](fields)


@dataclass(frozen=True)
class _Fields:
    host: str
    port: int | None
    login: str
    password: str
    schema: str
    extra: dict[str, Any]
    to: list[str]


def _q(value: str) -> str:
    """Quote one URL component completely ('@', '/', ':' … included)."""
    return quote(str(value), safe="")


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on", "y"}
    return bool(value)


def _email_mode(extra: Mapping[str, Any]) -> str:
    """apprise secure mode; without an explicit ``mode`` the Airflow
    SMTP provider's flags decide."""
    mode = str(extra.get("mode", "")).lower()
    if mode:
        if mode not in {"ssl", "starttls", "insecure"}:
            raise ChannelConfigError(
                f"email: extra.mode must be ssl, starttls or insecure, not {mode!r}"
            )
        return mode
    if not _flag(extra.get("disable_ssl", False)):
        return "ssl"
    return "insecure" if _flag(extra.get("disable_tls", False)) else "starttls"


def _email_from(f: _Fields) -> str:
    sender = str(f.extra.get("from_email") or "")
    if not sender and "@" in f.login:
        sender = f.login
    if not sender:
        raise ChannelConfigError("email: set extra.from_email (or use an e-mail address as login)")
    return sender


def _email_url(f: _Fields) -> str:
    if not f.host:
        raise ChannelConfigError("email: the connection needs the SMTP host")
    recipients = [r.strip() for r in f.to if r and r.strip()]
    if not recipients:
        raise ChannelConfigError("email: no recipients ('to' is empty)")
    mode = _email_mode(f.extra)
    params = {"from": _email_from(f), "smtp": f.host, "mode": mode}
    if f.extra.get("from_name"):
        params["name"] = str(f.extra["from_name"])
    if f.extra.get("timeout"):
        params["cto"] = str(int(f.extra["timeout"]))
    scheme = "mailto" if mode == "insecure" else "mailtos"
    path = "/".join(_q(r) for r in recipients)
    query = urlencode(params, quote_via=quote)
    return f"{scheme}://{_userinfo(f.login, f.password)}{_hostport(f.host, f.port)}/{path}?{query}"


def _userinfo(login: str, password: str) -> str:
    if not login:
        return ""
    return f"{_q(login)}:{_q(password)}@" if password else f"{_q(login)}@"


def _hostport(host: str, port: int | None) -> str:
    return f"{host}:{int(port)}" if port else host


def _from_webhook_url(value: str, param: str) -> str:
    """Accept either the bare token or the full robot webhook URL (``…?key=`` /
    ``…?access_token=``)."""
    if "://" not in value:
        return value.strip()
    found = parse_qs(urlsplit(value).query).get(param)
    if not found:
        raise ChannelConfigError(f"webhook URL has no {param}= parameter")
    return found[0]


def _wecom_url(f: _Fields) -> str:
    raw = str(f.extra.get("key") or f.password or f.host or "")
    if not raw:
        raise ChannelConfigError("wecom: put the robot webhook key in the connection password")
    return f"wecombot://{_q(_from_webhook_url(raw, 'key'))}/"


def _dingtalk_url(f: _Fields) -> str:
    raw = str(f.extra.get("token") or f.password or f.host or "")
    if not raw:
        raise ChannelConfigError("dingtalk: put the robot access token in the connection password")
    token = _from_webhook_url(raw, "access_token")
    secret = str(f.extra.get("secret") or "")
    phones = "/".join(_q(p.strip()) for p in f.to if p and p.strip())
    auth = f"{_q(secret)}@" if secret else ""
    return f"dingtalk://{auth}{_q(token)}/{phones + '/' if phones else ''}"


def _webhook_url(f: _Fields) -> str:
    if f.extra.get("apprise_url"):
        return str(f.extra["apprise_url"])
    host, port, path, secure = _webhook_target(f)
    if not host:
        raise ChannelConfigError("webhook: set the host (or extra.apprise_url)")
    headers = dict(f.extra.get("headers") or {})
    query = "?" + "&".join(f"+{_q(k)}={_q(v)}" for k, v in headers.items()) if headers else ""
    scheme = "jsons" if secure else "json"
    return f"{scheme}://{_userinfo(f.login, f.password)}{_hostport(host, port)}{path}{query}"


def _webhook_target(f: _Fields) -> tuple[str, int | None, str, bool]:
    """host, port, path and https? — from a plain host or a host holding a whole http(s) URL."""
    path = str(f.extra.get("path") or "")
    if "://" in f.host:
        parts = urlsplit(f.host)
        return (
            parts.hostname or "",
            f.port or parts.port,
            _path(path or parts.path),
            parts.scheme == "https",
        )
    return f.host, f.port, _path(path), f.schema.lower() in {"https", "jsons"}


def _path(path: str) -> str:
    if not path or path == "/":
        return "/"
    return "/" + quote(path.lstrip("/"), safe="/")


# --------------------------------------------------------------------------- redaction


def redact(url: str) -> str:
    """``url`` with every credential replaced by ``****`` — safe for logs, UI and reports.

    Passwords, headers and secret-looking query values are always hidden; so is a webhook's
    path. For services that keep their token in the host (wecombot, dingtalk, …) and for any
    other scheme, everything after the scheme is hidden.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return _MASK
    scheme = parts.scheme.lower()
    if not scheme:
        return _MASK
    if scheme in _EMAIL_SCHEMES:
        path = parts.path
    elif scheme in _WEBHOOK_SCHEMES:
        path = parts.path if parts.path in {"", "/"} else f"/{_MASK}"
    else:
        return f"{scheme}://{_MASK}"
    return urlunsplit((parts.scheme, _redact_netloc(parts), path, _redact_query(parts.query), ""))


def _redact_netloc(parts: Any) -> str:
    if "@" not in parts.netloc:
        return parts.netloc
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return f"{user}:{_MASK}@{hostport}" if ":" in userinfo else f"{user}@{hostport}"


def _redact_query(query: str) -> str:
    pairs = []
    for item in query.split("&") if query else []:
        name, sep, _value = item.partition("=")
        key = unquote(name)
        secret = key.lower() in _SECRET_PARAMS or key.startswith("+")  # '+X' = HTTP header
        pairs.append(f"{name}{sep}{_MASK}" if secret and sep else item)
    return "&".join(pairs)


def scrub(text: str, url: str) -> str:
    """``text`` with every credential of ``url`` (raw or URL-quoted) replaced by ``****``.

    For messages that may echo parts of the URL (library warnings, exceptions).
    """
    for secret in sorted(_secret_fragments(url), key=len, reverse=True):
        text = text.replace(secret, _MASK)
    return text


def _secret_fragments(url: str) -> set[str]:
    """The pieces :func:`redact` hides, as written in the URL (quoted and unquoted)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return {url}
    scheme = parts.scheme.lower()
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    raw = {password}
    raw |= {
        v for k, v in parse_qsl(parts.query) if k.startswith("+") or k.lower() in _SECRET_PARAMS
    }
    if scheme not in _EMAIL_SCHEMES:
        raw |= set(parts.path.split("/"))
    if scheme not in _EMAIL_SCHEMES | _WEBHOOK_SCHEMES:
        raw |= {user, hostport.rsplit(":", 1)[0] if hostport.count(":") == 1 else hostport}
    return {s for r in raw if len(r) >= 3 for s in (r, unquote(r))}
