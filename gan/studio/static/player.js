// reelgan studio, player room: frames arrive over one WebSocket (a 20-byte header, then a JPEG), are decoded in
// order, kept in a buffer of a few frames and drawn at the chosen fps on requestAnimationFrame. Controls go back
// as JSON; every frame carries its stream's id and settings version, so frames made before a change are dropped
// and the change -> display latency is measured. window.studio.stats is read by tests and benchmarks.
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const MAX_BUFFER = 3;                 // frames held before drawing: small keeps a change close to the screen
  const stats = { shown: 0, fps: 0, received: 0, dropped: 0, latencyMs: null, latencies: [], stream: 0,
                  version: 0, t: 0, errors: [] };
  const studio = { stats, ready: false, model: null, settings: null, recordings: [], send, status: '' };
  window.studio = studio;

  const canvas = $('view'), ctx = canvas.getContext('2d');
  let ws, nextId = 1, pending = null, decoding = Promise.resolve(), due = 0, dragging = false;
  const buffer = [], shownAt = [];
  const cur = { stream: 0, version: 0 };

  // The token came in the URL and now lives in an HttpOnly cookie: keep it out of the address bar and history.
  if (location.search.includes('token=')) history.replaceState(null, '', location.pathname);

  // ---- connection ----------------------------------------------------------------------------------------
  function connect() {
    ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/player/ws`);
    ws.binaryType = 'arraybuffer';
    ws.onmessage = (e) => (typeof e.data === 'string' ? onMessage(JSON.parse(e.data)) : onFrame(e.data));
    ws.onclose = () => setStatus('disconnected from the studio: is it still running? reload to reconnect', true);
  }

  function send(msg) {
    msg.id = nextId++;
    if (msg.type !== 'record') pending = { id: msg.id, sent: performance.now() };
    ws.send(JSON.stringify(msg));
    return msg.id;
  }

  function onMessage(msg) {
    if (msg.type === 'hello') {
      studio.model = msg.model;
      setUp(msg.model);
      adopt(msg);
      studio.ready = true;
    } else if (msg.type === 'applied') {
      adopt(msg);
      if (pending && pending.id === msg.id) Object.assign(pending, { stream: msg.stream, version: msg.version });
      setStatus('');
    } else if (msg.type === 'error') {
      if (pending && pending.id === msg.id) pending = null;
      stats.errors.push(msg.message);
      setStatus(msg.message, true);
      if (studio.settings) show(studio.settings);           // put the control back to what is playing
    } else if (msg.type === 'status') {
      setStatus(msg.text || '');
    } else if (msg.type === 'recorded') {
      recorded(msg);
    }
  }

  function adopt(msg) {
    cur.stream = msg.stream;
    cur.version = msg.version;
    studio.settings = msg.settings;
    show(msg.settings);
    while (buffer.length && !current(buffer[0])) drop(buffer.shift());
  }

  const current = (f) => f.stream === cur.stream && f.version >= cur.version;
  const drop = (f) => { f.bitmap.close(); stats.dropped++; };

  // ---- frames ---------------------------------------------------------------------------------------------
  function onFrame(data) {
    const head = new DataView(data, 0, 20);
    const f = { stream: head.getUint32(0, true), version: head.getUint32(4, true), t: head.getFloat64(8, true),
                index: head.getUint32(16, true) };
    stats.received++;
    if (!current(f)) { stats.dropped++; return; }
    const blob = new Blob([new Uint8Array(data, 20)], { type: 'image/jpeg' });
    decoding = decoding.then(() => createImageBitmap(blob)).then((bitmap) => {
      f.bitmap = bitmap;
      if (!current(f)) { drop(f); return; }
      if (f.version > cur.version) cur.version = f.version;   // another tab moved this stream's clock
      buffer.push(f);
      while (buffer.length > MAX_BUFFER) drop(buffer.shift());
    }).catch(() => { stats.dropped++; });
  }

  function tick(now) {
    const period = 1000 / ((studio.settings && studio.settings.fps) || 30);
    if (buffer.length && now >= due - 4) {                    // 4 ms: rAF jitter at 60 Hz
      const f = buffer.shift();
      if (canvas.width !== f.bitmap.width || canvas.height !== f.bitmap.height) {
        canvas.width = f.bitmap.width; canvas.height = f.bitmap.height;
      }
      ctx.drawImage(f.bitmap, 0, 0);
      f.bitmap.close();
      due = now - due > period ? now + period : due + period;
      stats.shown++; stats.t = f.t; stats.stream = f.stream; stats.version = f.version;
      shownAt.push(now);
      if (pending && pending.version && f.stream === pending.stream && f.version >= pending.version) {
        stats.latencyMs = now - pending.sent;
        stats.latencies.push(stats.latencyMs);
        pending = null;
      }
      showTime(f.t);
    }
    while (shownAt.length && now - shownAt[0] > 2000) shownAt.shift();
    stats.fps = shownAt.length > 1 ? (1000 * (shownAt.length - 1)) / (shownAt[shownAt.length - 1] - shownAt[0]) : 0;
    requestAnimationFrame(tick);
  }

  setInterval(() => {
    const lat = stats.latencyMs === null ? '-' : `${stats.latencyMs.toFixed(0)} ms`;
    $('stats').textContent = `${stats.fps.toFixed(1)} frames/s shown · last change ${lat} · ${stats.shown} frames`;
  }, 500);

  // ---- controls -------------------------------------------------------------------------------------------
  function setUp(m) {
    const label = m.step === 0 || m.step === null ? 'untrained weights' : `step ${m.step}`;
    $('model').textContent = `${m.checkpoint}: ${m.name}, ${m.resolution} px, ${m.mode === 'none' ? 'unconditional' :
      m.mode}, ${label}`;
    const has = { classes: m.classes.length > 0, text: m.text, image: m.image, interpolate: m.interpolate,
                  precisions: m.precisions.length > 0, resolutions: m.resolutions.length > 1 };
    document.querySelectorAll('[data-needs]').forEach((el) => { el.hidden = !has[el.dataset.needs]; });
    fill($('class'), m.classes.map((name, i) => [i, `${i}: ${name}`]));
    fill($('precision'), m.precisions.map((p) => [p, p]));
    fill($('resolution'), m.resolutions.map((r) => [r, `${r} px${r === m.resolution ? '' : ' (preview)'}`]));
  }

  function fill(select, items) {
    select.replaceChildren(...items.map(([value, text]) => new Option(text, value)));
  }

  function show(s) {
    $('seed').value = s.seed;
    $('truncation').value = s.truncation; $('truncation-out').textContent = s.truncation.toFixed(2);
    $('speed').value = s.speed; $('speed-out').textContent = `${s.speed.toFixed(2)}×`;
    $('fps').value = String(s.fps);
    if (![...$('fps').options].some((o) => Number(o.value) === s.fps)) $('fps').add(new Option(s.fps, s.fps));
    $('fps').value = String(s.fps);
    if (s.class_id !== null) $('class').value = s.class_id;
    if (s.prompt !== null && document.activeElement !== $('prompt')) $('prompt').value = s.prompt;
    $('precision').value = s.precision; $('compile').checked = s.compile; $('resolution').value = s.resolution;
    $('pause').textContent = s.speed === 0 ? '▶ play' : '❚❚ pause';
  }

  function showTime(t) {
    const seconds = t / (studio.model ? studio.model.data_fps : 16);
    $('time-out').textContent = `${seconds.toFixed(1)} s`;
    if (!dragging) {
      const slider = $('time');
      if (seconds > Number(slider.max) * 0.9) slider.max = Math.ceil(seconds * 1.5);
      slider.value = seconds;
    }
  }

  function setStatus(text, error = false) {
    studio.status = text;
    $('status').textContent = text;
    $('status').className = error ? 'error' : '';
  }

  const set = (fields) => send({ type: 'set', ...fields });
  let lastSpeed = 1;
  $('seed').addEventListener('change', () => set({ seed: Number($('seed').value) }));
  $('seed-next').addEventListener('click', () => set({ seed: studio.settings.seed + 1 }));
  $('seed-random').addEventListener('click', () => set({ seed: Math.floor(Math.random() * 1e6) }));
  $('truncation').addEventListener('input', () => set({ truncation: Number($('truncation').value) }));
  $('speed').addEventListener('input', () => set({ speed: Number($('speed').value) }));
  $('fps').addEventListener('change', () => set({ fps: Number($('fps').value) }));
  $('class').addEventListener('change', () => set({ class_id: Number($('class').value) }));
  $('prompt-apply').addEventListener('click', () => set({ prompt: $('prompt').value }));
  $('prompt').addEventListener('keydown', (e) => { if (e.key === 'Enter') set({ prompt: $('prompt').value }); });
  $('precision').addEventListener('change', () => set({ precision: $('precision').value }));
  $('compile').addEventListener('change', () => set({ compile: $('compile').checked }));
  $('resolution').addEventListener('change', () => set({ resolution: Number($('resolution').value) }));
  $('reverse').addEventListener('click', () => set({ speed: -(studio.settings.speed || lastSpeed) }));
  $('pause').addEventListener('click', () => {
    if (studio.settings.speed === 0) { set({ speed: lastSpeed }); return; }
    lastSpeed = studio.settings.speed;
    set({ speed: 0 });
  });
  $('glide').addEventListener('click', () => send({ type: 'interpolate', seed: Number($('glide-seed').value),
                                                    seconds: Number($('glide-seconds').value) }));
  const time = $('time');
  time.addEventListener('pointerdown', () => { dragging = true; });
  time.addEventListener('pointerup', () => { dragging = false; });
  time.addEventListener('input', () => send({ type: 'scrub', seconds: Number(time.value) }));

  $('still').addEventListener('change', async () => {
    const file = $('still').files[0];
    if (!file) return;
    setStatus('uploading the still…');
    // octet-stream: a type no cross-site form can send (the server refuses text/plain and form bodies)
    const res = await fetch('/player/still', { method: 'POST', body: file,
                                               headers: { 'Content-Type': 'application/octet-stream' } });
    const out = (res.headers.get('content-type') || '').includes('json') ? await res.json()
                                                                           : { error: (await res.text()).trim() };
    if (out.error) setStatus(out.error, true); else set({ image: out.id });
  });

  let recording = false;
  $('record').addEventListener('click', () => {
    recording = !recording;
    $('record').classList.toggle('on', recording);
    $('record').textContent = recording ? '■ stop' : '● record';
    send({ type: 'record', on: recording });
    if (recording) setStatus('recording what is shown…');
  });

  function recorded(msg) {
    studio.recordings.push(msg);
    const a = document.createElement('a');
    a.href = msg.url; a.download = msg.name; a.textContent = `${msg.name} (${msg.frames} frames)`;
    $('recordings').prepend(a);
    setStatus(`saved ${msg.path}`);
  }

  connect();
  requestAnimationFrame(tick);
})();
