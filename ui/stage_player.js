// No less-than sign anywhere in this script: Streamlit's st.html did not run a script that had one.
// The stage's player (ui/stage.py): plays a finished run's recorded frames in the browser, from the attacker's
// starting image, FPS frames a second times the speed, with Back / Play-Pause / Forward, a speed choice, a
// slider, and a PSNR curve whose marker follows the frame shown. No server round trip per frame, so a busy
// server cannot make it stutter. Its state survives the page's reruns (window.__stagePlayers, by run).
(function start(tries) {
  const data = __DATA__;
  const root = document.getElementById(`stage-player-${data.run}`);
  if (!root) {  // Streamlit may run this before it has put the HTML in the page
    if (100 > tries) setTimeout(() => start(tries + 1), 50);
    return;
  }
  const $ = (name) => root.querySelector(`[data-part="${name}"]`);
  const frames = data.frames, last = frames.length - 1;
  const players = (window.__stagePlayers = window.__stagePlayers || {});
  const state = players[data.run] || {index: data.start, playing: data.playing, speed: 1, credit: -data.hold};
  players[data.run] = state;
  if (root.__timer) clearInterval(root.__timer);

  const recon = $("recon"), slider = $("slider"), play = $("play");
  const chartText = $("chart-text");
  // The PSNR curve is drawn here: Streamlit's st.html strips SVG written in the HTML itself.
  const svgNs = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNs, "svg");
  svg.setAttribute("viewBox", `0 0 ${data.chart.w} ${data.chart.h}`);
  const part = (tag, attributes) => {
    const element = document.createElementNS(svgNs, tag);
    Object.entries(attributes).forEach(([key, value]) => element.setAttribute(key, value));
    svg.appendChild(element);
    return element;
  };
  part("line", {x1: 0, x2: data.chart.w, y1: data.chart.line_y, y2: data.chart.line_y, class: "stage-chart-line"});
  part("polyline", {points: frames.map((f) => `${f.x},${f.y}`).join(" "), class: "stage-chart-curve"});
  const marker = part("circle", {r: 5, class: "stage-chart-marker"});
  $("chart").replaceChildren(svg);
  slider.max = String(last);

  function psnrText(p) { return p === null ? "exact" : `${p.toFixed(1)} dB`; }
  function show() {
    const f = frames[state.index];
    recon.src = f.src;
    recon.alt = `The attacker's reconstruction at step ${f.step}, ` +
      (f.psnr === null ? "an exact copy of the private photo" : `PSNR ${f.psnr.toFixed(1)} dB against the private photo`);
    $("recon-caption").textContent = f.seq === 0 ? "The attacker's starting image" : "The attacker's reconstruction";
    const leaked = f.psnr === null || f.psnr >= data.line;
    $("step").textContent = f.step;
    $("psnr").textContent = psnrText(f.psnr);
    $("badge").textContent = leaked ? "LEAKED" : `below ${data.line} dB`;
    $("badge").className = `stage-badge ${leaked ? "stage-leaked" : "stage-safe"}`;
    $("line-head").textContent = f.seq === 0 ? "The attacker's starting image"
      : `Attack ${f.within ? "on its way to step " : "step "}${f.step}: ${psnrText(f.psnr)}.`;
    $("line-rest").textContent = f.seq === 0
      ? " (step 0): it has never seen the photo, only the gradient the client shared."
      : " The attacker has never seen this photo; it only changes its guess until the guess's gradient matches the " +
        "shared one.";
    slider.value = String(state.index);
    slider.setAttribute("aria-valuetext", `step ${f.step}, ${psnrText(f.psnr)}`);
    play.textContent = state.playing ? "Pause" : (state.index >= last ? "Play again" : "Play");
    marker.setAttribute("cx", f.x);
    marker.setAttribute("cy", f.y);
    chartText.textContent = `Frame ${state.index + 1} of ${frames.length}: step ${f.step}, ${psnrText(f.psnr)}.`;
  }
  function go(index) { state.index = Math.max(0, Math.min(last, index)); state.playing = false; show(); }
  $("back").onclick = () => go(state.index - 1);
  $("forward").onclick = () => go(state.index + 1);
  play.onclick = () => {
    if (!state.playing && state.index >= last) { state.index = 0; state.credit = -data.hold; }
    state.playing = !state.playing;
    show();
  };
  slider.oninput = () => go(Number(slider.value));
  root.querySelectorAll("[data-speed]").forEach((button) => {
    const pick = () => root.querySelectorAll("[data-speed]").forEach(
      (b) => b.setAttribute("aria-pressed", String(Number(b.dataset.speed) === state.speed)));
    button.onclick = () => { state.speed = Number(button.dataset.speed); pick(); };
    pick();
  });
  show();
  root.__timer = setInterval(() => {
    if (!document.body.contains(root)) { clearInterval(root.__timer); return; }
    if (!state.playing) return;
    state.credit += state.speed;  // one frame per tick at 1x; the first ticks hold the starting image
    let moved = false;
    while (state.credit >= 1 && last > state.index) { state.index += 1; state.credit -= 1; moved = true; }
    if (state.index >= last) state.playing = false;
    if (moved || !state.playing) show();
  }, 1000 / data.fps);
})(0);
