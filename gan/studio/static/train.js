// reelgan studio, training room: polls /train/state, animates the shown clips, draws the curves, sends controls.
// Hand-written, no libraries (works offline). window.studio holds what tests and benchmarks read.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const CHARTS = [
    {id: "chart-loss", title: "loss", series: [["G/loss", "G", "#58a6ff"], ["D/loss", "D", "#ffa657"]]},
    {id: "chart-logit", title: "mean logit", series: [["real/logit_image", "real, image D", "#3fb950"],
      ["fake/logit_image_d", "fake, image D", "#ff7b72"], ["real/logit_video", "real, video D", "#a5d6a7"],
      ["fake/logit_video_d", "fake, video D", "#f2b8b5"]]},
    {id: "chart-reg", title: "R1 and ADA p", series: [["D/r1_image", "R1 image", "#d2a8ff"],
      ["D/r1_video", "R1 video", "#8957e5"], ["augment/p", "augment p", "#e3b341"]]},
  ];
  const state = {points: [], visual: null, visualVersion: -1, sheets: {}, tick: 0, knobs: null};
  const studio = window.studio = {ready: false, status: "", points: 0, plotted: 0, visualVersion: -1,
                                  clipsShown: {real: 0, fake: 0}, diversity: null};

  function setStatus(text, error) {
    $("status").textContent = text || "";
    $("status").className = error ? "error" : "";
    studio.status = text || "";
  }

  // A refusal (403: the token is missing, e.g. after the studio restarted) is one line of text, not JSON.
  async function answer(r) {
    return (r.headers.get("content-type") || "").includes("json") ? r.json() : {error: (await r.text()).trim()};
  }
  // The token came in the URL and now lives in an HttpOnly cookie: keep it out of the address bar and history.
  if (location.search.includes("token=")) history.replaceState(null, "", location.pathname);

  async function control(msg) {
    try {
      const r = await fetch("/train/control", {method: "POST", headers: {"Content-Type": "application/json"},
                                                 body: JSON.stringify(msg)});
      const body = await answer(r);
      if (body.error) { setStatus(body.error, true); return false; }
      setStatus("");
      return true;
    } catch (e) { setStatus("the studio does not answer: " + e, true); return false; }
  }

  // ---- clips -------------------------------------------------------------------------------------------------
  function makeClips(box, side, n) {
    box.innerHTML = "";
    for (let i = 0; i < n; i++) {
      const d = document.createElement("div");
      d.className = "clip";
      d.innerHTML = '<canvas width="16" height="16"></canvas><div class="score" title="image D"><div></div></div>' +
                    '<div class="score" title="video D"><div></div></div><div class="num"></div>';
      box.appendChild(d);
    }
    studio.clipsShown[side] = n;
  }

  function scoreBar(el, logit, off) {
    const half = 50 * Math.tanh(Math.abs(logit) / 2);
    el.style.left = (logit >= 0 ? 50 : 50 - half) + "%";
    el.style.width = half + "%";
    el.style.background = off ? "#555" : (logit >= 0 ? "#3fb950" : "#ff7b72");
  }

  function loadSheet(name, url) {
    const img = new Image();
    img.onload = () => { state.sheets[name] = img; };
    img.src = url;
  }

  function showVisual(v) {
    state.visual = v;
    for (const side of ["real", "fake"]) {
      const box = $(side === "real" ? "reals" : "fakes");
      if (box.children.length !== v.clips) makeClips(box, side, v.clips);
      loadSheet(side, v[side]);
      v.scores[side].image.forEach((s, i) => {
        const clip = box.children[i];
        scoreBar(clip.children[1].firstChild, s, false);
        scoreBar(clip.children[2].firstChild, v.scores[side].video[i], !v.video_on);
        clip.children[3].textContent = "img " + s.toFixed(2) + " · vid " + v.scores[side].video[i].toFixed(2) +
          (v.video_on ? "" : " (off)");
      });
    }
    const img = new Image();
    img.onload = () => {
      const c = $("diffs");
      c.width = img.width; c.height = img.height;
      const k = Math.min(3, 200 / img.height);                 // at most 200 px high
      c.style.width = (img.width * k) + "px"; c.style.height = (img.height * k) + "px";
      c.getContext("2d").drawImage(img, 0, 0);
    };
    img.src = v.diffs;
    const warnAt = state.warn || 0.3;
    $("gauge-bar").style.width = Math.min(100, 50 * v.diversity) + "%";
    $("gauge-mark").style.left = (50 * warnAt) + "%";
    const low = v.diversity < warnAt;
    $("diversity").textContent = v.diversity.toFixed(2) + "x the reals' spread at step " + v.step +
      (low ? " — the fakes look alike: mode collapse? (try a lower G lr, more R1, or augmentation)" : "");
    $("diversity").className = low ? "warn" : "muted";
    studio.diversity = v.diversity;
  }

  function animate() {
    const v = state.visual;
    if (v) {
      const f = state.tick % v.frames;
      for (const side of ["real", "fake"]) {
        const img = state.sheets[side];
        if (!img) continue;
        const w = img.width / v.frames, h = img.height / v.clips;
        const box = $(side === "real" ? "reals" : "fakes");
        for (let i = 0; i < v.clips && i < box.children.length; i++) {
          const c = box.children[i].firstChild;
          if (c.width !== w) { c.width = w; c.height = h; }
          c.getContext("2d").drawImage(img, f * w, i * h, w, h, 0, 0, w, h);
        }
      }
      state.tick++;
    }
  }

  // ---- curves ------------------------------------------------------------------------------------------------
  function drawChart(spec) {
    const c = $(spec.id), g = c.getContext("2d"), W = c.width, H = c.height, pad = 28;
    g.fillStyle = "#0c0f12"; g.fillRect(0, 0, W, H);
    const pts = state.points;
    let lo = Infinity, hi = -Infinity, plotted = 0;
    for (const [key] of spec.series) {
      for (const p of pts) if (key in p) { lo = Math.min(lo, p[key]); hi = Math.max(hi, p[key]); }
    }
    g.fillStyle = "#8a94a3"; g.font = "11px system-ui";
    g.fillText(spec.title, 4, 12);
    if (!pts.length || lo === Infinity) return 0;
    if (hi - lo < 1e-6) { hi += 0.5; lo -= 0.5; }
    const s0 = pts[0].step, s1 = Math.max(pts[pts.length - 1].step, s0 + 1);
    const X = (s) => pad + (W - pad - 4) * (s - s0) / (s1 - s0), Y = (y) => H - 14 - (H - 30) * (y - lo) / (hi - lo);
    g.fillText(hi.toPrecision(3), 2, 24); g.fillText(lo.toPrecision(3), 2, H - 14);
    g.fillText("step " + s1, W - 60, H - 2);
    if (lo < 0 && hi > 0) {                                   // the zero line: a logit's real / fake boundary
      g.strokeStyle = "#2d3440"; g.beginPath(); g.moveTo(pad, Y(0)); g.lineTo(W, Y(0)); g.stroke();
    }
    let lx = 10 + g.measureText(spec.title).width + 10;
    const every = Math.max(1, Math.floor(pts.length / (2 * W)));
    for (const [key, label, color] of spec.series) {
      g.strokeStyle = color; g.beginPath();
      let started = false, n = 0;
      for (let i = 0; i < pts.length; i += every) {
        const p = pts[i];
        if (!(key in p)) continue;
        if (!started) { g.moveTo(X(p.step), Y(p[key])); started = true; } else g.lineTo(X(p.step), Y(p[key]));
        n++;
      }
      g.stroke();
      if (started) { g.fillStyle = color; g.fillText(label, lx, 12); lx += g.measureText(label).width + 10; }
      plotted += n;
    }
    return plotted;
  }

  function drawCharts() {
    const counts = CHARTS.map(drawChart);
    studio.plotted = counts[0];
    studio.points = state.points.length;
  }

  // ---- state -------------------------------------------------------------------------------------------------
  function showKnobs(knobs) {
    for (const [name, value] of Object.entries(knobs)) {
      const el = $(name);
      if (!el || el === document.activeElement) continue;
      el.value = value === null ? "" : +Number(value).toPrecision(4);
    }
    state.knobs = knobs;
  }

  async function poll() {
    try {
      const r = await fetch("/train/state?since=" + state.points.length + "&visual=" + state.visualVersion);
      const s = await answer(r);
      if (s.error) throw new Error(s.error);
      state.warn = s.diversity_warn;
      if (s.since === state.points.length) state.points.push(...s.history);
      if (s.visual) {
        state.visualVersion = studio.visualVersion = s.visual_version;
        showVisual(s.visual);
      }
      if (s.knobs) showKnobs(s.knobs);
      $("run").textContent = s.outdir;
      $("progress").textContent = "step " + s.step + " of " + s.steps + " · " + s.status +
        (s.delay > 0 ? " · " + s.delay.toFixed(1) + " s between steps" : "");
      $("pause").textContent = s.paused ? "▶ continue" : "❚❚ pause";
      state.paused = s.paused;
      if (s.message) setStatus(s.message, s.status === "error");
      drawCharts();
      studio.ready = true;
      studio.runStatus = s.status;
    } catch (e) { setStatus("the studio does not answer: " + e, true); }
    setTimeout(poll, 500);
  }

  $("pause").addEventListener("click", () => control({action: state.paused ? "resume" : "pause"}));
  $("step").addEventListener("click", () => control({action: "step"}));
  $("delay").addEventListener("input", () => { $("delay-out").textContent = (+$("delay").value).toFixed(1) + " s"; });
  $("delay").addEventListener("change", () => control({action: "delay", seconds: +$("delay").value}));
  for (const el of document.querySelectorAll(".knob")) {
    el.addEventListener("change", async () => {
      const raw = el.value.trim();
      const value = el.id === "augment_target" && raw === "" ? null : raw;
      const ok = await control({action: "knob", name: el.id, value: value});
      if (!ok && state.knobs) showKnobs(state.knobs);      // put the control back
    });
  }
  setInterval(animate, 125);
  poll();
})();
