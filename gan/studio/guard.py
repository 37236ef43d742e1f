"""Who may use the studio: the same rules Jupyter applies on localhost, as one ASGI middleware (`Guard`).

Any web page the user visits can talk to a server on 127.0.0.1 (a WebSocket is not bound by CORS, a form POST
needs no permission) and, by DNS rebinding, read its answers. So every request passes, in this order:
  1. Host allowlist: the Host header names this machine (loopback names, the address it serves; any IP literal
     when it serves every interface). A rebinding page's requests carry its own name and are refused.
  2. Origin: a request that carries an Origin (every WebSocket handshake and state-changing request a browser
     makes) must come from the studio's own page (scheme://Host); `Origin: null` and other origins are refused.
     Fetch metadata (Sec-Fetch-Site) refuses what another site or another local port sends, navigations aside.
  3. The per-launch token (secrets.token_urlsafe): the URL the command prints carries it (?token=...); the
     first request with it sets an HttpOnly, SameSite=Strict cookie, which the page's fetches and WebSocket
     send from then on. Everything but the static files (public code) needs it; scripts may pass
     `?token=` or `Authorization: token ...`.
  4. A POST with a body type a cross-site form can send without asking (text/plain, form encodings) is
     refused: the page sends JSON or application/octet-stream.
A refusal is 403 (415 for 4) with one line saying why, before the app sees the request; a WebSocket is refused
before it is accepted. Each kind of refusal is logged once on the server's console.
"""
from __future__ import annotations

import ipaddress
import secrets
import socket
import sys
from typing import Optional, Set, Tuple
from urllib.parse import parse_qs, urlsplit

from starlette.requests import cookie_parser

PUBLIC_PREFIXES = ("/static/", "/favicon.ico")
SIMPLE_TYPES = ("text/plain", "multipart/form-data", "application/x-www-form-urlencoded")
SAFE_METHODS = ("GET", "HEAD")


def _split_host(value: str) -> str:
    """'name:port', '[v6]:port', 'v4' -> the host part, lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _ip(name: str) -> Optional[ipaddress._BaseAddress]:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    ip = _ip(host)
    return host.lower() == "localhost" if ip is None else ip.is_loopback


class Access:
    """One launch's rules: the served address and port, the hosts allowed, the token and its cookie."""

    def __init__(self, host: str, port: int, token: Optional[str] = None):
        self.host, self.port = host, int(port)
        self.token = token or secrets.token_urlsafe(32)
        self.cookie = f"reelgan-studio-{self.port}"        # cookies ignore ports: one name per studio
        ip = _ip(host)
        self.wildcard = ip is not None and ip.is_unspecified
        self.names: Set[str] = {"localhost", "127.0.0.1", "::1", host.lower()}
        if not is_loopback(host):                              # served beyond this machine: its own names too
            self.names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
        self._logged: Set[Tuple[str, str]] = set()

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def url(self, base: str) -> str:
        """The URL to open: base (http://host:port/) with the token."""
        return f"{base}?token={self.token}"

    def open_url(self) -> str:
        """The printed URL: a wildcard address is opened as 127.0.0.1 (browsers refuse 0.0.0.0)."""
        host = "127.0.0.1" if self.wildcard else self.host
        return self.url(f"http://{'[' + host + ']' if ':' in host else host}:{self.port}/")

    # ---- the checks -------------------------------------------------------------------------------------------
    def host_allowed(self, host_header: str) -> bool:
        name = _split_host(host_header)
        if name in self.names:
            return True
        ip = _ip(name)
        # An IP literal cannot be rebound: a browser that sends it connected to that address, i.e. to us.
        return ip is not None and (ip.is_loopback or self.wildcard or str(ip) == str(_ip(self.host) or ""))

    def token_matches(self, candidate: Optional[str]) -> bool:
        return bool(candidate) and secrets.compare_digest(candidate.encode(), self.token.encode())

    def refusal(self, scope: dict) -> Tuple[int, str, str, bool]:
        """(status, kind, reason, set_cookie): status 0 allows it (set_cookie: the token came in the query)."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        if not host or not self.host_allowed(host):
            return 403, "host", f"Host {host[:80]!r} is not this studio's address (a DNS-rebinding page?): open " \
                                f"the URL the studio printed", False
        origin = headers.get("origin")
        if origin is not None:
            parts = urlsplit(origin)
            if origin == "null" or parts.scheme not in ("http", "https") or parts.netloc.lower() != host.lower():
                return 403, "origin", f"requests from the page at Origin {origin[:80]!r} are refused: only the " \
                                      f"studio's own page may control it", False
        method = scope.get("method", "GET")
        site = headers.get("sec-fetch-site")
        navigation = method in SAFE_METHODS and headers.get("sec-fetch-mode") == "navigate"
        if site in ("cross-site", "same-site") and not navigation:
            return 403, "site", f"a request sent by another site ({site}) is refused: only the studio's own page " \
                                f"may use it", False
        path = scope.get("path", "")
        if path.startswith(PUBLIC_PREFIXES):
            return 0, "", "", False
        query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [None])[0]
        auth = headers.get("authorization", "")
        # Other local apps' cookies for 127.0.0.1 come along: starlette's lenient parser, as the browser sends them.
        ok_cookie = self.token_matches(cookie_parser(headers.get("cookie", "")).get(self.cookie))
        ok_query = self.token_matches(query)
        if not (ok_cookie or ok_query or self.token_matches(auth[6:] if auth.startswith("token ") else None)):
            return 403, "token", "this studio needs its token: open the URL it printed " \
                                 "(http://...:PORT/?token=...)", False
        if method not in SAFE_METHODS and scope["type"] == "http":
            ctype = headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype in SIMPLE_TYPES:
                return 415, "type", f"a {ctype} body is refused (a cross-site form can send one): send JSON", False
        return 0, "", "", ok_query and not ok_cookie

    def log(self, kind: str, reason: str, scope: dict) -> None:
        key = (kind, scope.get("path", ""))
        if key not in self._logged and len(self._logged) < 100:   # once per kind and path: no console flood
            self._logged.add(key)
            print(f"reelgan studio: refused {scope.get('type')} {scope.get('path', '')}: {reason}",
                  file=sys.stderr, flush=True)


class Guard:
    """ASGI middleware applying `Access` to every HTTP request and WebSocket handshake."""

    def __init__(self, app, access: Access):
        self.app, self.access = app, access

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        status, kind, reason, set_cookie = self.access.refusal(scope)
        if status:
            self.access.log(kind, reason, scope)
            body = (reason + "\n").encode()
            head = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
            if scope["type"] == "http":
                await send({"type": "http.response.start", "status": status, "headers": head})
                await send({"type": "http.response.body", "body": body})
            elif "websocket.http.response" in scope.get("extensions", {}):
                await send({"type": "websocket.http.response.start", "status": status, "headers": head})
                await send({"type": "websocket.http.response.body", "body": body})
            else:
                await send({"type": "websocket.close", "code": 1008})   # before accept: the server answers 403
            return
        if not set_cookie or scope["type"] != "http":
            return await self.app(scope, receive, send)
        cookie = f"{self.access.cookie}={self.access.token}; HttpOnly; SameSite=Strict; Path=/".encode()

        async def send_with_cookie(message):
            if message["type"] == "http.response.start":
                message = dict(message, headers=list(message.get("headers", [])) + [(b"set-cookie", cookie)])
            await send(message)
        await self.app(scope, receive, send_with_cookie)
