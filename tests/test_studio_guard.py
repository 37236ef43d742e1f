"""The studio on localhost (gan/studio/guard.py): the Host allowlist, the Origin check and the per-launch token on
raw HTTP requests and WebSocket handshakes against the real command; the training room's controls against CSRF;
the control messages a hostile client sends (binary frames, huge or non-finite numbers, wrong types) answered in one
line with the socket alive; and, in headless Chromium, a page on a second origin that tries each attack and fails
while the studio's own page keeps working."""
from __future__ import annotations

import concurrent.futures
import http.client
import http.server
import io
import json
import re
import signal
import socket
import struct
import threading
import time
import zlib
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from tests import browser
from gan.studio.guard import Access
from tests.conftest import ROOT
from tests.test_bad_input import _conditional_checkpoint
from tests.test_studio import _start as start_player
from tests.test_studio import _wait, ckpt, needs_browser  # noqa: F401  (ckpt: the module-scoped fixture)
from tests.test_trainroom import _start as start_room
from tests.test_trainroom import _state, _until

TINY = ROOT / "configs" / "tiny.yaml"
EVIL = "http://evil.example"


def test_access_rules():
    a = Access("127.0.0.1", 8765)
    assert a.loopback and a.cookie == "reelgan-studio-8765" and len(a.token) >= 40
    assert a.token != Access("127.0.0.1", 8765).token                              # one secret per launch
    assert a.open_url() == f"http://127.0.0.1:8765/?token={a.token}"
    for host in ("127.0.0.1:8765", "localhost:8765", "LocalHost", "[::1]:8765", "127.0.0.2"):
        assert a.host_allowed(host), host
    for host in ("rebind.evil.example:8765", "localhost.evil.example", "10.1.2.3:8765", "", "[::1"):
        assert not a.host_allowed(host), host
    w = Access("0.0.0.0", 8765)                    # every interface: IP literals and this machine's names too
    assert not w.loopback and w.open_url().startswith("http://127.0.0.1:8765/?token=")
    assert w.host_allowed("192.168.1.20:8765") and w.host_allowed(socket.gethostname())
    assert not w.host_allowed("rebind.evil.example:8765")


# ---- raw requests against the real command -----------------------------------------------------------------------


def _http(port, method, path, headers=None, body=None, host=None):
    """(status, headers, text) of one raw request; Host defaults to the studio's own."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers={"Host": host or f"127.0.0.1:{port}", **(headers or {})})
        r = conn.getresponse()
        return r.status, r.headers, r.read().decode("utf-8", "replace")
    finally:
        conn.close()


def _handshake(port, path="/player/ws", host=None, **headers) -> int:
    """The status a raw WebSocket upgrade request gets (101: accepted)."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {host or f'127.0.0.1:{port}'}", "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return int(s.recv(4096).decode("latin-1").split()[1])


@pytest.fixture(scope="module")
def player(tmp_path_factory):
    """The command serving an image-to-video model (stills, the scrub bound); stopped by the last test."""
    d = tmp_path_factory.mktemp("guard")
    _conditional_checkpoint(d / "i2v.pt", "image")
    proc, url, token = start_player(d / "i2v.pt", d / "out")
    port = int(re.search(r":(\d+)/", url).group(1))
    yield SimpleNamespace(proc=proc, url=url, token=token, port=port, own=f"http://127.0.0.1:{port}",
                          cookie=f"reelgan-studio-{port}={token}", outdir=d / "out")
    proc.kill()


def test_websocket_handshakes(player):
    p = player
    assert _handshake(p.port, f"/player/ws?token={p.token}", Origin=p.own) == 101
    assert _handshake(p.port, Cookie=p.cookie, Origin=p.own) == 101
    assert _handshake(p.port, f"/player/ws?token={p.token}") == 101              # a script: no Origin, the token
    assert _handshake(p.port, f"/player/ws?token={p.token}", Origin=EVIL) == 403  # cross-site hijack
    assert _handshake(p.port, Cookie=p.cookie, Origin="null") == 403              # sandboxed frame, file://
    assert _handshake(p.port, Cookie=p.cookie, Origin="http://127.0.0.1:1") == 403   # another local port
    assert _handshake(p.port, Cookie=p.cookie, Origin=p.own, Sec_Fetch_Site="same-site") == 403
    assert _handshake(p.port, Origin=p.own) == 403                                # no token
    assert _handshake(p.port, "/player/ws?token=guess", Origin=p.own) == 403
    rebind = f"rebind.evil.example:{p.port}"                                     # DNS rebinding: its own origin
    assert _handshake(p.port, f"/player/ws?token={p.token}", host=rebind, Origin=f"http://{rebind}") == 403


def test_pages_need_the_host_and_the_token(player):
    p = player
    for path in ("/", "/player", "/static/player.js", f"/player?token={p.token}"):
        status, _, text = _http(p.port, "GET", path, host=f"rebind.evil.example:{p.port}")
        assert status == 403 and "not this studio's address" in text, (path, status)
    status, _, text = _http(p.port, "GET", "/player")
    assert status == 403 and "needs its token" in text and len(text.strip().splitlines()) == 1
    assert _http(p.port, "GET", "/static/player.js")[0] == 200                   # public code, no secret in it
    status, headers, _ = _http(p.port, "GET", f"/?token={p.token}")
    assert status in (302, 307) and headers["location"] == f"/player?token={p.token}"
    status, headers, page = _http(p.port, "GET", f"/player?token={p.token}")
    cookie = headers["set-cookie"]
    assert status == 200 and "reelgan studio" in page
    assert cookie.startswith(p.cookie) and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert _http(p.port, "GET", "/player", {"Cookie": p.cookie})[0] == 200
    assert _http(p.port, "GET", "/player", {"Cookie": f'_xsrf=2|a"b; {p.cookie}; junk'})[0] == 200   # others' too
    assert _http(p.port, "GET", "/player", {"Authorization": f"token {p.token}"})[0] == 200


def _png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_still_upload_needs_the_token_and_its_own_origin(player):
    p, png = player, _png()
    own = {"Cookie": p.cookie, "Origin": p.own, "Content-Type": "application/octet-stream"}
    for headers, status in (({**own, "Origin": EVIL}, 403), ({**own, "Origin": "null"}, 403),
                            ({**own, "Cookie": ""}, 403), ({**own, "Content-Type": "text/plain"}, 415),
                            ({**own, "Content-Type": "multipart/form-data; boundary=x"}, 415)):
        got, _, text = _http(p.port, "POST", "/player/still", headers, png)
        assert got == status and "\n" not in text.strip(), (headers, got, text)
    status, _, text = _http(p.port, "POST", "/player/still", own, png)
    assert status == 200 and len(json.loads(text)["id"]) == 16
    p.still = json.loads(text)["id"]
    status, _, text = _http(p.port, "POST", "/player/still", own, _huge_png(5000, 4000))   # 20 MP in 20 KB
    assert status == 400 and "megapixels" in json.loads(text)["error"], text


def _huge_png(w: int, h: int) -> bytes:
    """A black grey-level PNG of w x h px: a few hundred KB that would decode to w * h bytes and more."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = zlib.compress(bytes(w + 1) * h, 9)                # each row: filter byte 0, then w zeros
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) +
            chunk(b"IDAT", rows) + chunk(b"IEND", b""))


def test_hostile_control_messages_are_one_line_and_the_frames_go_on(player):
    """Each bad message gets one error line; the socket stays open and frames keep coming, also after a scrub to
    the image model's last time (a scrub to 1e7 s is refused instead of drawing 1e8 motion codes)."""
    from websockets.sync.client import connect
    p = player
    times = []                                           # of the frames received

    def frame_time(m: bytes) -> float:
        return float(np.frombuffer(m[8:16], "<f8")[0])   # broadcast.HEADER: stream, version, t, index
    with connect(f"ws://127.0.0.1:{p.port}/player/ws?token={p.token}", origin=p.own, open_timeout=60) as ws:
        def reply(raw, want="error"):
            ws.send(raw)
            while True:
                m = ws.recv(timeout=60)
                if isinstance(m, bytes):
                    times.append(frame_time(m))
                elif isinstance(m, str) and "id" in json.loads(m):      # a reply (not a stream's news)
                    m = json.loads(m)
                    assert m["type"] == want, (raw, m)
                    assert want != "error" or ("\n" not in m["message"] and len(m["message"]) < 200), m
                    return m
        hello = json.loads(ws.recv(timeout=60))
        assert hello["type"] == "hello"
        max_seconds = hello["model"]["limits"]["time"][1]
        assert reply(b"\x00\x01 binary")["message"].startswith("a control is a JSON text message")
        assert "seed must be a number" in reply('{"type": "set", "id": 1, "seed": 1' + "0" * 400 + "}")["message"]
        assert "unknown still" in reply('{"type": "set", "id": 2, "image": []}')["message"]
        assert "JSON object with finite numbers" in reply('{"type": "scrub", "id": 3, "seconds": NaN}')["message"]
        assert "time must be a number" in reply('{"type": "scrub", "id": 4, "seconds": 1e400}')["message"]
        assert "plays up to" in reply('{"type": "scrub", "id": 5, "seconds": 1e7}')["message"]
        assert "id must be a whole number" in reply('{"type": "set", "id": "' + "x" * 1000 + '"}')["message"]
        assert "JSON object" in reply("[" * 20000 + "]" * 20000)["message"]
        assert "true or false" in reply('{"type": "record", "id": 6, "on": "yes"}')["message"]
        assert "truncation must be a number" in reply('{"type": "set", "id": 7, "truncation": 1e309}')["message"]
        reply(json.dumps({"type": "set", "id": 8, "image": p.still}), "applied")
        reply(json.dumps({"type": "scrub", "id": 9, "seconds": max_seconds}), "applied")
        t_end = max_seconds * hello["model"]["data_fps"]
        deadline = time.time() + 120
        while not any(abs(t - t_end) <= 1e-6 * t_end for t in times):   # the last time: rendered, not stuck
            assert time.time() < deadline, ("no frame at the scrubbed time", t_end, times[-5:])
            m = ws.recv(timeout=120)
            if isinstance(m, bytes):
                times.append(frame_time(m))


def test_the_command_survived_it_all(player):
    player.proc.send_signal(signal.SIGTERM)
    _, err = player.proc.communicate(timeout=60)
    assert player.proc.returncode == 0 and "Traceback" not in err, err
    assert "refused websocket /player/ws" in err and "refused http /player/still" in err    # logged, once each
    assert err.count("refused websocket /player/ws: requests from the page at Origin") == 1


def test_serving_the_network_warns_and_still_needs_the_token(ckpt, tmp_path):  # noqa: F811
    """--host 0.0.0.0 (every interface, for a few seconds here): a warning, the token still required, the
    machine's address accepted as a Host and a rebinding name refused."""
    proc, url, token = start_player(ckpt, tmp_path, "--host", "0.0.0.0")
    port = int(re.search(r":(\d+)/", url).group(1))
    try:
        assert _http(port, "GET", "/player")[0] == 403
        assert _http(port, "GET", f"/player?token={token}", host=f"192.0.2.7:{port}")[0] == 200   # an IP literal
        assert _http(port, "GET", f"/player?token={token}", host=f"rebind.evil.example:{port}")[0] == 403
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "warning: --host 0.0.0.0 serves the network" in err, err


# ---- the training room, in process ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def room(tmp_path_factory):
    """A paused training room served by uvicorn on a thread of this process (the trainer's state is inspectable)."""
    import torch
    import uvicorn

    from gan.config import load_config
    from gan.studio.app import bind, build_app
    from gan.studio.trainroom import Trainer, TrainRoom
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg = load_config(str(TINY), {"train": {"steps": 1000, "checkpoint_every": 1000}})
    trainer = Trainer(cfg, tmp_path_factory.mktemp("room") / "run", paused=True)
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    access = Access("127.0.0.1", port)
    server = uvicorn.Server(uvicorn.Config(build_app([TrainRoom(trainer)], access), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        _until(lambda: trainer.status == "paused", 120, "the paused run")
        yield SimpleNamespace(port=port, trainer=trainer, own=f"http://127.0.0.1:{port}",
                              cookie={"Cookie": f"reelgan-studio-{port}={access.token}"})
    finally:
        server.should_exit = True
        thread.join(60)
        sock.close()
        torch.set_num_threads(threads)


def test_training_room_controls_refuse_cross_site_requests(room):
    port, t, own, cookie = room.port, room.trainer, room.own, room.cookie
    g_lr = t.run.knobs()["g_lr"]
    knob, resume = json.dumps({"action": "knob", "name": "g_lr", "value": 1.0}), json.dumps({"action": "resume"})
    for body in (knob, resume):
        for headers, status in ((dict(cookie, Origin=EVIL), 403), (dict(cookie, Origin="null"), 403),
                                (dict(cookie, Origin="http://127.0.0.1:9"), 403),         # same site, other port
                                (dict(cookie, **{"Sec-Fetch-Site": "same-site"}), 403),
                                ({"Origin": own}, 403),                                    # no token
                                (dict(cookie, Origin=own), 415)):                          # text/plain: a form's
            got, _, text = _http(port, "POST", "/train/control", {"Content-Type": "text/plain", **headers}, body)
            assert got == status, (body, headers, got, text)
    got, _, text = _http(port, "GET", "/train/state", cookie, host=f"rebind.evil.example:{port}")
    assert got == 403 and "not this studio's address" in text
    assert _http(port, "GET", "/train/state")[0] == 403
    assert t.run.knobs()["g_lr"] == g_lr and t.paused                       # nothing got through
    own_json = dict(cookie, Origin=own, **{"Content-Type": "application/json"})

    def post(body):
        got, _, text = _http(port, "POST", "/train/control", own_json, body)
        return got, json.loads(text) if got != 413 else text
    assert post(json.dumps({"action": "knob", "name": "g_lr", "value": g_lr / 2})) == (200, {"ok": True})
    assert t.run.knobs()["g_lr"] == g_lr / 2                                # the page's own request works
    for body, words in (('{"action": "delay", "seconds": 1' + "0" * 400 + "}", "not a number"),
                        ('{"action": "knob", "name": "g_lr", "value": 1' + "0" * 400 + "}", "must be a number"),
                        ('{"action": "knob", "name": "g_lr", "value": NaN}', "finite numbers"),
                        ('{"action": "knob", "name": "g_lr", "value": 1e400}', "out of range"),
                        ('{"action": "delay", "seconds": [1]}', "not a number")):
        got, reply = post(body)
        assert got == 400 and words in reply["error"] and len(reply["error"]) < 200, (body, reply)
    assert post("{" + " " * 10000 + "}")[0] == 413
    assert t.run.knobs()["g_lr"] == g_lr / 2 and t.paused


# ---- a second origin in Chromium ------------------------------------------------------------------------------

ATTACK = """<!doctype html><title>cat pictures</title>
<form id="f" method="POST" action="http://127.0.0.1:{room}/train/control" enctype="text/plain" target="sink">
<input name='{{"action": "resume", "x": "' value='"}}'></form><iframe name="sink"></iframe>
<script>
const attack = window.attack = {{ws: 'connecting', messages: 0, settled: 0}};
const ws = new WebSocket('ws://127.0.0.1:{player}/player/ws');       // cross-site WebSocket hijacking
ws.binaryType = 'arraybuffer';
ws.onopen = () => {{ attack.ws = 'open'; ws.send(JSON.stringify({{type: 'set', id: 1, seed: 7}}));
                    ws.send(JSON.stringify({{type: 'record', id: 2, on: true}})); }};
ws.onmessage = () => {{ attack.messages++; }};
ws.onclose = () => {{ if (attack.ws !== 'open') attack.ws = 'refused'; }};
const post = (url, body, type, mode) => fetch(url, {{method: 'POST', mode, credentials: 'include', body,
    headers: {{'Content-Type': type}}}}).catch(() => null).then(() => attack.settled++);
const control = 'http://127.0.0.1:{room}/train/control';
post(control, JSON.stringify({{action: 'knob', name: 'g_lr', value: 1.0}}), 'text/plain', 'no-cors');   // CSRF
post(control, JSON.stringify({{action: 'resume'}}), 'text/plain', 'no-cors');
post(control, JSON.stringify({{action: 'knob', name: 'g_lr', value: 1.0}}), 'application/json', 'cors');
post('http://127.0.0.1:{player}/player/still', 'GIF89a', 'text/plain', 'no-cors');
document.getElementById('f').submit();
</script>"""


def _serve_attack(html: str):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@needs_browser
def test_a_second_origin_cannot_steer_record_watch_or_train(ckpt, tmp_path):  # noqa: F811
    """The user has the studio's page open (its cookie set) and visits another page, served from another port of
    127.0.0.1 (same site: the cookie goes along): its WebSocket, CSRF posts and form are all refused; a page whose
    name rebinds to 127.0.0.1 gets nothing; the studio's own page still plays."""
    with concurrent.futures.ThreadPoolExecutor(2) as pool:             # both start at once (model load, run setup)
        started = [pool.submit(start_player, ckpt, tmp_path / "rec", "--precision", "fp32", "--fps", "15"),
                   pool.submit(start_room, tmp_path, "--paused")]
    if any(f.exception() for f in started):
        for f in started:
            if f.exception() is None:
                f.result()[0].kill()
        raise next(f.exception() for f in started if f.exception())
    (pproc, purl, ptoken), (rproc, rurl, rtoken) = (f.result() for f in started)
    pport, rport = (int(re.search(r":(\d+)/", u).group(1)) for u in (purl, rurl))
    server = _serve_attack(ATTACK.format(player=pport, room=rport))
    driver = browser.open_browser(extra_args=["--host-resolver-rules=MAP rebind.evil.example 127.0.0.1"])
    try:
        driver.get(f"{rurl}?token={rtoken}")
        _until(lambda: driver.execute_script("return window.studio.runStatus") == "paused", 120, "the paused room")
        g_lr = _state(rurl, rtoken)["knobs"]["g_lr"]
        driver.get(f"{purl}?token={ptoken}")
        _wait(driver, "return window.studio.ready && window.studio.stats.shown > 3", 60)
        assert "token" not in driver.current_url                           # kept in the cookie, not the URL

        driver.get(f"http://127.0.0.1:{server.server_address[1]}/")
        _wait(driver, "return window.attack.ws !== 'connecting' && window.attack.settled === 4", 30)
        time.sleep(1.0)                                                      # the form's post, any late message
        attack = driver.execute_script("return window.attack")
        assert attack["ws"] == "refused" and attack["messages"] == 0, attack
        state = _state(rurl, rtoken)
        assert state["knobs"]["g_lr"] == g_lr and state["paused"], state
        assert not list((tmp_path / "rec").glob("*.mp4"))                   # nothing recorded

        driver.get(f"http://rebind.evil.example:{rport}/train/state")        # DNS rebinding, in the browser
        assert "not this studio's address" in driver.find_element("tag name", "body").text
        driver.get(purl)                                                     # the user's page: the cookie works
        _wait(driver, "return window.studio.ready && window.studio.stats.shown > 3", 60)
    finally:
        browser.close_browser(driver)
        server.shutdown()
        for proc in (pproc, rproc):
            proc.send_signal(signal.SIGTERM)
    _, perr = pproc.communicate(timeout=60)
    _, rerr = rproc.communicate(timeout=60)
    assert pproc.returncode == 0 and rproc.returncode == 0 and "Traceback" not in perr + rerr, perr + rerr
    assert "refused websocket /player/ws" in perr and "refused http /player/still" in perr, perr
    assert "refused http /train/control" in rerr and "rebind.evil.example" in rerr, rerr
