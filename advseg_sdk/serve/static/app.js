// advseg serve page: upload a photo or sketch (or draw), add colour hints, Colour, download.
// Plain JS, no libraries; talks only to this server's /v1/model and /v1/colorize.
(function () {
  "use strict";
  const MAX_SIDE = 1536; // uploads are scaled to at most this long side for drawing
  const $ = (id) => document.getElementById(id);
  const base = $("base"), hints = $("hints");
  const bctx = base.getContext("2d"), hctx = hints.getContext("2d");
  let model = null, acceptsHints = false, source = null, points = [], drawing = null, lastUrl = null;

  function kind() { return document.querySelector("input[name=kind]:checked").value; }
  function tool() { return document.querySelector("input[name=tool]:checked").value; }
  function status(text, isError) { const s = $("status"); s.textContent = text; s.className = isError ? "error" : "muted"; }

  function resize(w, h) {
    for (const c of [base, hints]) { c.width = w; c.height = h; }
    $("size-info").textContent = w + " × " + h + " px";
  }
  function paintSource() {
    bctx.fillStyle = "#fff"; bctx.fillRect(0, 0, base.width, base.height);
    if (source) bctx.drawImage(source, 0, 0, base.width, base.height);
  }
  function blank() {
    source = null; points = []; resize(512, 512); paintSource(); hctx.clearRect(0, 0, hints.width, hints.height);
    document.querySelector("input[name=kind][value=sketch]").checked = true; updateKind();
  }
  function clearDrawing() { points = []; paintSource(); hctx.clearRect(0, 0, hints.width, hints.height); }

  function loadFile(file) {
    const url = URL.createObjectURL(file);
    const img = new Image();
    img.onload = function () {
      const s = Math.min(1, MAX_SIDE / Math.max(img.naturalWidth, img.naturalHeight));
      resize(Math.max(8, Math.round(img.naturalWidth * s)), Math.max(8, Math.round(img.naturalHeight * s)));
      source = img; points = []; paintSource(); hctx.clearRect(0, 0, hints.width, hints.height);
      status("Loaded " + file.name + (s < 1 ? ", scaled to " + base.width + " × " + base.height + " for drawing." : "."));
    };
    img.onerror = function () { status("That file is not an image this browser can show.", true); };
    img.src = url;
  }

  function pos(ev) {
    const r = base.getBoundingClientRect();
    return { x: (ev.clientX - r.left) * base.width / r.width, y: (ev.clientY - r.top) * base.height / r.height };
  }
  function lineWidth() { return Number($("width").value) * Math.max(1, base.width / 512); }
  function strokeTo(p) {
    const t = drawing.tool;
    const ctx = t === "hint" ? hctx : bctx;
    ctx.lineCap = "round"; ctx.lineJoin = "round"; ctx.lineWidth = t === "eraser" ? lineWidth() * 3 : lineWidth();
    ctx.globalCompositeOperation = "source-over";
    ctx.strokeStyle = t === "pen" ? "#000" : t === "hint" ? $("hint-color").value : "#fff";
    if (t === "eraser") { hctx.save(); hctx.globalCompositeOperation = "destination-out"; hctx.lineWidth = ctx.lineWidth; hctx.lineCap = "round";
      hctx.beginPath(); hctx.moveTo(drawing.last.x, drawing.last.y); hctx.lineTo(p.x, p.y); hctx.stroke(); hctx.restore(); }
    ctx.beginPath(); ctx.moveTo(drawing.last.x, drawing.last.y); ctx.lineTo(p.x, p.y); ctx.stroke();
    drawing.last = p; drawing.moved = true;
  }
  hints.addEventListener("pointerdown", function (ev) {
    ev.preventDefault(); hints.setPointerCapture(ev.pointerId);
    const p = pos(ev); drawing = { tool: tool(), start: p, last: p, moved: false };
  });
  hints.addEventListener("pointermove", function (ev) {
    if (!drawing) return;
    const p = pos(ev);
    if (!drawing.moved && Math.hypot(p.x - drawing.start.x, p.y - drawing.start.y) < 3) return;
    strokeTo(p);
  });
  function endStroke() {
    if (!drawing) return;
    const d = drawing; drawing = null;
    if (d.moved) return;
    const p = d.start;
    if (d.tool === "hint") { // a click: one colour dot, sent as a point hint
      const c = $("hint-color").value;
      points.push({ x: Math.round(p.x), y: Math.round(p.y), color: c });
      const r = Math.max(4, lineWidth() * 1.5);
      hctx.fillStyle = c; hctx.strokeStyle = "#222"; hctx.lineWidth = 1.5;
      hctx.beginPath(); hctx.arc(p.x, p.y, r, 0, 2 * Math.PI); hctx.fill(); hctx.stroke();
    } else if (d.tool === "pen") {
      bctx.fillStyle = "#000"; bctx.beginPath(); bctx.arc(p.x, p.y, lineWidth() / 2, 0, 2 * Math.PI); bctx.fill();
    }
  }
  hints.addEventListener("pointerup", endStroke);
  hints.addEventListener("pointercancel", endStroke);

  function blob(canvas) { return new Promise((res) => canvas.toBlob(res, "image/png")); }
  function hasStrokes() {
    const d = hctx.getImageData(0, 0, hints.width, hints.height).data;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 127) return true;
    return false;
  }
  // The scribble keeps strokes only: dots travel as points, so they are cut out of it.
  async function scribbleBlob() {
    if (!hasStrokes()) return null;
    const c = document.createElement("canvas"); c.width = hints.width; c.height = hints.height;
    const ctx = c.getContext("2d"); ctx.drawImage(hints, 0, 0);
    ctx.globalCompositeOperation = "destination-out";
    const r = Math.max(4, lineWidth() * 1.5) + 2;
    for (const p of points) { ctx.beginPath(); ctx.arc(p.x, p.y, r, 0, 2 * Math.PI); ctx.fill(); }
    return blob(c);
  }

  async function colour() {
    const btn = $("colour"); btn.disabled = true; status("Colouring…");
    const t0 = performance.now();
    try {
      const form = new FormData();
      form.append("image", await blob(base), kind() + ".png");
      if (acceptsHints) {
        if (points.length) form.append("hints", JSON.stringify(points));
        const s = await scribbleBlob(); if (s) form.append("scribble", s, "scribble.png");
      }
      const q = "format=json" + (kind() === "photo" ? "&from_photo=1" : "");
      const res = await fetch("/v1/colorize?" + q, { method: "POST", body: form, headers: { Accept: "application/json" } });
      const body = await res.json().catch(() => ({ error: res.status + " " + res.statusText }));
      if (!res.ok) { status("Refused (" + res.status + "): " + (body.error || res.statusText), true); return; }
      show(body);
      status("Done in " + Math.round(performance.now() - t0) + " ms (" + body.width + " × " + body.height + ").");
    } catch (err) {
      status("Request failed: " + err, true);
    } finally { btn.disabled = false; }
  }
  function toBlobUrl(b64) {
    const bin = atob(b64), arr = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) arr[i] = bin.charCodeAt(i);
    return URL.createObjectURL(new Blob([arr], { type: "image/png" }));
  }
  function show(body) {
    if (lastUrl) URL.revokeObjectURL(lastUrl);
    lastUrl = toBlobUrl(body.color_png);
    $("colour-img").src = lastUrl; $("colour-fig").hidden = false;
    if (body.sketch_png) { $("sketch-img").src = "data:image/png;base64," + body.sketch_png; $("sketch-fig").hidden = false; }
    else { $("sketch-fig").hidden = true; }
    $("placeholder").hidden = true; $("results").classList.remove("empty");
    const a = $("download"); a.href = lastUrl; a.hidden = false;
  }
  function updateKind() {
    $("kind-help").textContent = kind() === "photo" ? "A photo is turned into a line drawing first." : "Black lines on white.";
  }

  async function loadModel() {
    try {
      const res = await fetch("/v1/model");
      model = await res.json();
      acceptsHints = !!model.accepts_hints;
      document.body.classList.toggle("no-hints", !acceptsHints);
      $("model-info").textContent = "Model " + model.name + " (" + model.arch + ", " + model.runner.split(":")[0] +
        ")" + (acceptsHints ? " · takes colour hints" : " · colours automatically (no hints)");
    } catch (err) { $("model-info").textContent = "Could not read /v1/model: " + err; }
  }

  document.body.classList.add("no-hints");
  $("file").addEventListener("change", (ev) => { if (ev.target.files[0]) loadFile(ev.target.files[0]); });
  $("blank").addEventListener("click", blank);
  $("clear").addEventListener("click", clearDrawing);
  $("colour").addEventListener("click", colour);
  for (const r of document.querySelectorAll("input[name=kind]")) r.addEventListener("change", updateKind);
  resize(512, 512); paintSource(); loadModel();
})();
