// The explorer's view: controls, and a figure drawn in the browser.
//
// The kernel sends, once per view (and again when a control marked `kernel` changes):
// the figure's backgrounds (axes, ticks, labels: a PNG per layout, one for light and one for
// dark themes), its overlays (the legends, drawn over the data), and one frame per combination
// of the controls: for each moving artist, its points in CSS pixels or its text. Moving a
// control only picks another frame and draws it on a canvas: no message to the kernel.

function blobUrl(view) {
  return URL.createObjectURL(new Blob([view], { type: "image/png" }));
}

function isDark(el) {
  // The text colour the theme gives the output: light text means a dark background.
  const rgb = getComputedStyle(el).color.match(/[\d.]+/g) || ["0", "0", "0"];
  const [r, g, b] = rgb.slice(0, 3).map(Number);
  return 0.2126 * r + 0.7152 * g + 0.0722 * b > 128;
}

function marker(ctx, kind, x, y, size) {
  const h = size / 2;
  ctx.beginPath();
  if (kind === "s") ctx.rect(x - h, y - h, size, size);
  else if (kind === "D") { ctx.moveTo(x, y - h); ctx.lineTo(x + h, y); ctx.lineTo(x, y + h); ctx.lineTo(x - h, y); ctx.closePath(); }
  else if (kind === "^") { ctx.moveTo(x, y - h); ctx.lineTo(x + h, y + h); ctx.lineTo(x - h, y + h); ctx.closePath(); }
  else ctx.arc(x, y, h, 0, 2 * Math.PI);
  ctx.fill();
}

function drawLine(ctx, points, style, colour) {
  ctx.save();
  if (style.clip) { ctx.beginPath(); ctx.rect(...style.clip); ctx.clip(); }
  ctx.strokeStyle = colour; ctx.fillStyle = colour;
  if (style.lw > 0) {
    ctx.lineWidth = style.lw; ctx.setLineDash(style.dash || []);
    ctx.lineJoin = "round"; ctx.lineCap = style.dash && style.dash.length ? "butt" : "round";
    ctx.beginPath();
    let pen = false;
    for (let i = 0; i < points.length; i += 2) {
      const x = points[i], y = points[i + 1];
      if (!Number.isFinite(x) || !Number.isFinite(y)) { pen = false; continue; }
      if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      pen = true;
    }
    ctx.stroke();
  }
  if (style.marker) {
    ctx.setLineDash([]);
    for (let i = 0; i < points.length; i += 2) {
      if (Number.isFinite(points[i]) && Number.isFinite(points[i + 1])) marker(ctx, style.marker, points[i], points[i + 1], style.ms);
    }
  }
  ctx.restore();
}

function drawText(ctx, item, style, colour) {
  const lines = item.t.split("\n");
  const size = style.size, height = 1.2 * size;
  ctx.font = `${style.weight || "normal"} ${size}px "DejaVu Sans", "Helvetica Neue", Arial, sans-serif`;
  ctx.fillStyle = colour;
  ctx.textAlign = style.ha === "center" ? "center" : style.ha === "right" ? "right" : "left";
  ctx.textBaseline = "alphabetic";
  // the anchor is matplotlib's: centre, top, or the last line's baseline
  let first;
  if (style.va === "center") first = item.y - (lines.length * height) / 2 + 0.8 * size;
  else if (style.va === "top") first = item.y + 0.8 * size;
  else if (style.va === "bottom") first = item.y - (lines.length - 1) * height - 0.25 * size;
  else first = item.y - (lines.length - 1) * height;
  lines.forEach((line, i) => ctx.fillText(line, item.x, first + i * height));
}

function render({ model, el }) {
  const spec = model.get("spec");
  const root = document.createElement("div");
  root.className = "bce-explorer";
  root.dataset.ready = "false";
  const controls = document.createElement("div");
  controls.className = "bce-controls";
  const figure = document.createElement("div");
  figure.className = "bce-figure";
  figure.style.width = `${spec.width}px`;
  figure.style.height = `${spec.height}px`;
  figure.setAttribute("role", "img");
  const background = document.createElement("img");
  background.className = "bce-background";
  background.alt = "";
  const canvas = document.createElement("canvas");
  canvas.className = "bce-plot";
  canvas.width = Math.round(spec.width * spec.scale);
  canvas.height = Math.round(spec.height * spec.scale);
  const overlay = document.createElement("img");
  overlay.className = "bce-overlay";
  overlay.alt = "";
  for (const layer of [background, canvas, overlay]) {
    layer.style.width = `${spec.width}px`;
    layer.style.height = `${spec.height}px`;
  }
  const fallback = document.createElement("img");
  fallback.className = "bce-fallback";
  fallback.alt = "";
  fallback.style.width = `${spec.width}px`;
  fallback.src = blobUrl(model.get("fallback"));
  figure.append(fallback, background, canvas, overlay);
  const status = document.createElement("div");
  status.className = "bce-status";
  status.setAttribute("role", "status");
  status.setAttribute("aria-live", "polite");
  const caption = document.createElement("div");
  caption.className = "bce-caption";
  caption.setAttribute("aria-live", "polite");
  root.append(controls, figure, status, caption);
  el.appendChild(root);

  const index = Object.assign({}, model.get("index"));
  const inputs = {};
  let data = null; // {frames, pool, backgrounds: [[light, dark] urls], overlays: [light, dark] urls}
  let inputAt = null;
  let busy = false;

  spec.controls.forEach((control, c) => {
    const row = document.createElement("div");
    row.className = "bce-control";
    const id = `bce-${Math.random().toString(36).slice(2)}-${c}`;
    const label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = control.label;
    let input;
    const readout = document.createElement("output");
    readout.htmlFor = id;
    if (control.kind === "menu") {
      input = document.createElement("select");
      control.options.forEach((text, i) => {
        const option = document.createElement("option");
        option.value = String(i); option.textContent = text;
        input.appendChild(option);
      });
      input.value = String(index[control.name]);
    } else {
      input = document.createElement("input");
      input.type = "range";
      input.min = "0"; input.max = String(control.options.length - 1); input.step = "1";
      input.value = String(index[control.name]);
    }
    input.id = id;
    input.dataset.control = control.name;
    // Keys pressed on a control are the control's: JupyterLab's command-mode shortcuts (arrows move
    // between cells, X cuts one) would take them otherwise, as neither a range input nor a menu is
    // :read-write. Lumino looks for this attribute from the focused element up.
    input.setAttribute("data-lm-suppress-shortcuts", "true");
    const announce = () => {
      const text = control.options[Number(input.value)];
      if (control.kind !== "menu") { input.setAttribute("aria-valuetext", text); readout.textContent = text; }
    };
    announce();
    const changed = (final) => {
      const moved = index[control.name] !== Number(input.value);
      index[control.name] = Number(input.value);
      announce();
      if (control.kernel) {
        if (!final) return;
        busy = true;
        status.textContent = control.busy || "working...";
        root.dataset.busy = "true";
        model.set("index", Object.assign({}, index));
        model.save_changes();
        return;
      }
      if (moved) { inputAt = performance.now(); draw(); }
      if (final) { model.set("index", Object.assign({}, index)); model.save_changes(); }
    };
    input.addEventListener("input", () => changed(control.kind === "menu"));
    if (control.kind !== "menu") input.addEventListener("change", () => changed(true));
    inputs[control.name] = input;
    // three cells per row, so that every control lines up: label, control, readout
    row.append(label, input, control.kind !== "menu" ? readout : document.createElement("span"));
    controls.appendChild(row);
  });

  function load() {
    const payload = model.get("payload");
    if (!payload || !payload.frames) return;
    if (data) {
      data.urls.forEach((url) => URL.revokeObjectURL(url));
    }
    const pool = new Float32Array(payload.pool.buffer.slice(payload.pool.byteOffset, payload.pool.byteOffset + payload.pool.byteLength));
    const urls = [];
    const url = (view) => { const u = blobUrl(view); urls.push(u); return u; };
    data = {
      frames: payload.frames, pool, offsets: payload.offsets, urls,
      backgrounds: payload.backgrounds.map((pair) => pair.map(url)),
      overlays: payload.overlays.map(url),
      key: payload.key,
    };
    // every image decoded ahead, so that a step that changes the axes does not wait for one
    const decoded = [...data.backgrounds.flat(), ...data.overlays].map((src) => {
      const image = new Image();
      image.src = src;
      return image.decode().catch(() => undefined);
    });
    Promise.all(decoded).then(() => {
      busy = false;
      status.textContent = "";
      root.dataset.busy = "false";
      draw();
    });
  }

  function frameNumber() {
    let number = 0;
    for (const control of spec.controls) {
      if (control.kernel) continue;
      number = number * control.options.length + index[control.name];
    }
    return number;
  }

  function draw() {
    if (!data) return;
    const dark = isDark(root);
    const number = frameNumber();
    const frame = data.frames[number];
    const theme = dark ? 1 : 0;
    const bg = data.backgrounds[frame.bg][theme];
    if (background.getAttribute("src") !== bg) background.src = bg;
    if (overlay.getAttribute("src") !== data.overlays[theme]) overlay.src = data.overlays[theme];
    const ctx = canvas.getContext("2d");
    ctx.setTransform(spec.scale, 0, 0, spec.scale, 0, 0);
    ctx.clearRect(0, 0, spec.width, spec.height);
    const texts = [];
    spec.artists.forEach((artist, a) => {
      const item = frame.a[a];
      if (item === null || item === undefined) return;
      const colour = (item.c && item.c[theme]) || artist.colour[theme];
      if (artist.kind === "line") {
        const [offset, length] = data.offsets[item.p];
        drawLine(ctx, data.pool.subarray(offset, offset + length), artist, colour);
      } else if (artist.kind === "cells") {
        for (const [x0, y0, x1, y1, fill] of item.cells) { ctx.fillStyle = fill; ctx.fillRect(x0, y0, x1 - x0, y1 - y0); }
      } else if (artist.kind === "text" && item.t) {
        drawText(ctx, item, artist, colour);
        if (artist.caption) texts.push(item.t.replace(/\n/g, " "));
      }
    });
    const words = texts.join(". ");
    if (caption.textContent !== words) caption.textContent = words;
    figure.setAttribute("aria-label", words || spec.title);
    root.dataset.ready = "true";
    root.dataset.frame = `${data.key}:${number}:${theme}`;
    fallback.style.display = "none";
    background.style.display = overlay.style.display = canvas.style.display = "";
    if (inputAt !== null) {
      const started = inputAt;
      inputAt = null;
      requestAnimationFrame(() => { root.dataset.latency = String(performance.now() - started); });
    }
  }

  background.style.display = overlay.style.display = canvas.style.display = "none";
  status.textContent = "preparing the explorer...";
  model.on("change:payload", load);
  model.on("change:index", () => {
    // a change from Python (or another view); this view's own changes are drawn already
    const now = model.get("index");
    let moved = false;
    for (const control of spec.controls) {
      if (now[control.name] !== undefined && now[control.name] !== index[control.name]) {
        index[control.name] = now[control.name];
        inputs[control.name].value = String(now[control.name]);
        moved = true;
      }
    }
    if (moved && !busy) draw();
  });
  // A theme change (JupyterLab's menu, a system dark mode) redraws with the other background.
  const themes = new MutationObserver(() => draw());
  themes.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-light", "class"] });
  const media = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;
  if (media && media.addEventListener) media.addEventListener("change", draw);
  if (model.get("payload") && model.get("payload").frames) load();
  else model.send({ event: "view" });
  return () => {
    themes.disconnect();
    if (media && media.removeEventListener) media.removeEventListener("change", draw);
    if (data) data.urls.forEach((url) => URL.revokeObjectURL(url));
  };
}

export default { render };
