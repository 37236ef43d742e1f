// The in-browser player: G.onnx on onnxruntime-web (WebAssembly) in this page. The inputs follow
// gan/onnx_export.py (z, psi, codes, anchor_offset, t); latents come from this page's own PRNG (seeded per seed
// and per motion anchor, so a seed always plays the same clip here; not the same numbers as torch's generator).
// Runtime: the vendored WebAssembly build, or onnxruntime-web's WebGPU build where the studio serves it (--backend
// webgpu / auto) and the browser has a WebGPU adapter; ?backend=wasm|webgpu|auto overrides the studio's choice.
const WASM_BUILD = '/static/browser/ort/ort.wasm.min.mjs';
let ort = null;

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const stats = { shown: 0, rendered: 0, fps: 0, renderMsPerFrame: null, videoCalls: 0, errors: [] };
const player = { ready: false, status: '', info: null, stats, settings: { seed: 0, truncation: 1, speed: 1 },
                 backend: null, backendNote: '', split: false, threads: 1, run, renderClip,
                 renderClipInputs };
window.webplayer = player;

function setStatus(text, error = false) {
  player.status = text;
  $('status').textContent = text;
  $('status').className = error ? 'error' : '';
  if (error) stats.errors.push(text);
}

// mulberry32 (a 32-bit counter hash) seeded by (seed, stream); Box-Muller for normals.
function rng(seed, stream) {
  let a = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(stream >>> 0, 0x85ebca77) ^ 0x6d2b79f5) >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function normals(out, offset, n, next) {
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - next())), a = 2 * Math.PI * next();
    out[offset + i] = r * Math.cos(a);
    if (i + 1 < n) out[offset + i + 1] = r * Math.sin(a);
  }
}

// one: G.onnx; or video + frames: its per-video and per-frame halves (reelgan-export --split).
const sessions = { one: null, video: null, frames: null };
let cachedVideo = { key: null, state: null };

// One graph call. feed: {B, T, K, z, psi, codes, anchorOffset, t} (flat float arrays) -> {dims, data}.
// Calls are queued: a session runs one call at a time (the WebGPU backend stalls on overlapping ones).
let queued = Promise.resolve();
function enqueue(work) {
  const call = queued.then(work);
  queued = call.catch(() => {});
  return call;
}
function run(feed, state = null) { return enqueue(() => runNow(feed, state)); }

// The graph's inputs for a feed, as tensors.
function tensors(feed) {
  const { B, T, K } = feed, info = player.info;
  return {
    z: new ort.Tensor('float32', Float32Array.from(feed.z), [B, info.z_dim]),
    psi: new ort.Tensor('float32', Float32Array.of(feed.psi), []),
    codes: new ort.Tensor('float32', Float32Array.from(feed.codes), [B, K, info.motion_dim]),
    anchor_offset: new ort.Tensor('int64', BigInt64Array.of(BigInt(feed.anchorOffset)), []),
    t: new ort.Tensor('float32', Float32Array.from(feed.t), [B, T]),
  };
}

// The per-video half's outputs (the video's latent and content), for the per-frame half to take.
async function videoState(inputs) {
  stats.videoCalls++;
  return sessions.video.run({ z: inputs.z, psi: inputs.psi });
}

async function runNow(feed, state = null) {
  const inputs = tensors(feed);
  let out;
  if (sessions.frames) {
    const video = state || await videoState(inputs), feeds = {};
    for (const name of sessions.frames.inputNames) feeds[name] = name in video ? video[name] : inputs[name];
    out = await sessions.frames.run(feeds);
  } else {
    out = await sessions.one.run(inputs);
  }
  const frames = out.frames;
  return { dims: frames.dims.map(Number), data: frames.data };
}

// Frames at times `times` (training-data frames) of one seed: the anchor window k0..k1 as the Python renderer
// picks it (gan/sampling/onnx_runtime.py: floor of the first and last time over the period, plus 2).
function clipInputs(seed, psi, times) {
  const info = player.info, period = info.motion_period;
  const k0 = Math.floor(Math.fround(times[0] / period));
  const k1 = Math.floor(Math.fround(times[times.length - 1] / period)) + 2, K = k1 - k0;
  const z = new Float32Array(info.z_dim), codes = new Float32Array(K * info.motion_dim);
  normals(z, 0, info.z_dim, rng(seed, 0xffffffff));
  for (let k = k0; k < k1; k++) normals(codes, (k - k0) * info.motion_dim, info.motion_dim, rng(seed, k));
  return { B: 1, T: times.length, K, z, psi, codes, anchorOffset: k0, t: times };
}

// The inputs renderClip feeds, as plain arrays (tests compare the page's clips with other runtimes').
async function renderClipInputs(seed, psi, times) {
  const f = clipInputs(seed, psi, times);
  return { ...f, z: Array.from(f.z), codes: Array.from(f.codes), t: Array.from(f.t) };
}

async function renderClip(seed, psi, times) {
  const feed = clipInputs(seed, psi, times);
  if (!player.split) return run(feed);
  const key = `${seed}:${psi}`;                  // the per-video half runs once per seed and truncation
  if (cachedVideo.key !== key) {
    const state = await enqueue(() => videoState(tensors(feed)));
    cachedVideo = { key, state };
  }
  return run(feed, cachedVideo.state);
}

// [1, T, 3, H, W] in [-1, 1] -> T ImageData.
function toImages(out) {
  const [, T, , H, W] = out.dims, plane = H * W, images = [];
  for (let f = 0; f < T; f++) {
    const img = new ImageData(W, H), px = img.data, base = f * 3 * plane;
    for (let i = 0; i < plane; i++) {
      for (let c = 0; c < 3; c++) px[4 * i + c] = Math.round((out.data[base + c * plane + i] + 1) * 127.5);
      px[4 * i + 3] = 255;
    }
    images.push(img);
  }
  return images;
}

// Playback: a producer renders chunks ahead into `queue`; a timer shows one frame per 1/fps s.
const queue = [];
let generation = 0, clock = 0;            // clock: the next frame's time in training-data frames
function restart() { generation++; queue.length = 0; }

async function produce(chunk) {
  for (;;) {
    if (queue.length >= 2 * chunk || player.settings.speed === 0) { await new Promise((r) => setTimeout(r, 5)); continue; }
    const gen = generation, s = player.settings, times = [];
    const step = (player.info.fps / player.fps) * s.speed;     // training-data frames per frame shown
    for (let i = 0; i < chunk; i++) times.push(clock + i * step);
    const t0 = performance.now();
    let out;
    try {
      out = await renderClip(s.seed, s.truncation, times);
    } catch (e) {
      setStatus(`the model failed in the browser: ${String(e.message || e).split('\n')[0]}`, true);
      return;
    }
    stats.renderMsPerFrame = (performance.now() - t0) / chunk;
    if (gen !== generation) continue;          // a control changed while rendering: drop the stale chunk
    clock = times[chunk - 1] + step;
    stats.rendered += chunk;
    for (const image of toImages(out)) queue.push(image);
  }
}

function display() {
  const ctx = $('view').getContext('2d'), period = 1000 / player.fps, recent = [];
  let due = performance.now();
  const tick = () => {
    const now = performance.now();
    if (queue.length && now >= due) {
      ctx.putImageData(queue.shift(), 0, 0);
      stats.shown++;
      recent.push(now);
      due = Math.max(due + period, now - period);     // keep the cadence, never bank more than a frame
    }
    while (recent.length && recent[0] < now - 1000) recent.shift();
    stats.fps = recent.length;
    $('stats').textContent = `${stats.fps} frames/s shown (target ${player.fps}); ` +
      `${stats.renderMsPerFrame === null ? '-' : stats.renderMsPerFrame.toFixed(1)} ms/frame rendered; ` +
      `${player.backend}, ${player.threads} thread(s)`;
    setTimeout(tick, Math.max(0, Math.min(period / 4, due - performance.now())));
  };
  tick();
}

function controls() {
  const bind = (id, key, parse, show) => {
    $(id).addEventListener(id === 'seed' ? 'change' : 'input', () => {
      const v = parse($(id).value);
      if (!Number.isFinite(v) || v < 0) { setStatus(`${key} must be a number >= 0, got ${$(id).value}`, true); return; }
      player.settings[key] = v;
      if (show) $(show).textContent = key === 'speed' ? `${v.toFixed(2)}×` : v.toFixed(2);
      setStatus('');
      restart();
    });
  };
  bind('seed', 'seed', (x) => (/^\d+$/.test(x.trim()) ? Number(x) : NaN));
  bind('truncation', 'truncation', Number, 'truncation-out');
  bind('speed', 'speed', Number, 'speed-out');
  $('seed-next').addEventListener('click', () => { $('seed').value = player.settings.seed + 1; $('seed').dispatchEvent(new Event('change')); });
}

// ['webgpu' | 'wasm', why]: WebGPU only when asked for (or auto), served, and the browser has an adapter.
async function pickBackend(info) {
  const want = ['auto', 'wasm', 'webgpu'].includes(params.get('backend')) ? params.get('backend') : info.backend;
  if (want === 'wasm') return ['wasm', 'WebAssembly'];
  if (!info.webgpu_build) return ['wasm', 'WebAssembly (WebGPU: start the studio with --backend webgpu)'];
  let adapter = null;
  try { adapter = navigator.gpu ? await navigator.gpu.requestAdapter() : null; } catch (e) { adapter = null; }
  if (!adapter) return ['wasm', 'WebAssembly (this browser offers no WebGPU adapter)'];
  return ['webgpu', 'WebGPU'];
}

async function main() {
  try {
    const res = await fetch('/browser/info');
    if (!res.ok) throw new Error(`${res.status} ${(await res.text()).split('\n')[0]}`);
    player.info = await res.json();
  } catch (e) {
    setStatus(`cannot reach the studio: ${String(e.message || e)}`, true);
    return;
  }
  const info = player.info;
  player.fps = Number(params.get('fps')) || info.display_fps || info.fps;
  player.settings.seed = info.seed || 0;
  $('seed').value = player.settings.seed;
  $('view').width = $('view').height = info.resolution;
  [player.backend, player.backendNote] = await pickBackend(info);
  const build = player.backend === 'webgpu' ? info.webgpu_build : WASM_BUILD;
  try {
    ort = await import(build);
  } catch (e) {
    setStatus(`cannot load the runtime ${build}: ${String(e.message || e).split('\n')[0]}`, true);
    return;
  }
  ort.env.wasm.wasmPaths = build.slice(0, build.lastIndexOf('/') + 1);
  // WebAssembly threads need SharedArrayBuffer, which only a cross-origin isolated page has (COOP + COEP).
  player.threads = self.crossOriginIsolated ? Math.max(1, Math.min(navigator.hardwareConcurrency || 1, 8)) : 1;
  if (params.get('threads')) player.threads = Math.max(1, Number(params.get('threads')) | 0);
  ort.env.wasm.numThreads = player.threads;
  $('model').textContent = `${info.name} (${info.resolution} px) — loading the model into the page…`;
  // The split halves where the studio serves them (?split=0: the one graph, for comparisons).
  player.split = Boolean(info.split) && params.get('split') !== '0';
  const options = { executionProviders: [player.backend] };
  try {
    if (player.split) {
      sessions.video = await ort.InferenceSession.create('/browser/model.video.onnx', options);
      sessions.frames = await ort.InferenceSession.create('/browser/model.frames.onnx', options);
    } else {
      sessions.one = await ort.InferenceSession.create('/browser/model.onnx', options);
    }
  } catch (e) {
    setStatus(`cannot load ${info.name} in the browser: ${String(e.message || e).split('\n')[0]}`, true);
    $('model').textContent = `${info.name}: not loaded`;
    return;
  }
  $('model').textContent = `${info.name} (${info.resolution} px, step ${info.step}), rendered in this page ` +
    `by ${player.backendNote}${player.split ? ', the per-video half once per seed' : ''}`;
  controls();
  player.ready = true;
  if (params.get('play') === '0') return;      // tests call run() / renderClip() without playback
  display();
  produce(Math.max(1, Number(params.get('chunk')) || info.chunk || 8));
}

main();
