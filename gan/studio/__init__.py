"""The studio: a local web app that plays a generator live in the browser (`reelgan-studio`).

app.py builds the ASGI app from rooms and serves it (uvicorn); broadcast.py renders one JPEG stream per distinct
picture and shares it among the tabs watching; playback.py holds the loaded model, a stream's settings and clock;
player.py is the player room (controls over a WebSocket, uploads, downloads); record.py the record button;
guard.py who may use it (Host allowlist, Origin check, per-launch token);
browser.py opens the headless Chromium the tests and benchmarks drive; static/ the page (no CDN).
"""
