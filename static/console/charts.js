// Charts for console pages with uPlot (installed by `make assets`, served from /static/vendor/uplot/).
// A <div class="chart" data-chart="<json_script id>"> with {"x": [unix s], "y": [numbers]} becomes a
// line (or bar) chart; data-label / data-unit / data-kind="bars" tune it.
(function () {
  "use strict";
  if (!window.uPlot) return;
  const css = getComputedStyle(document.documentElement);
  const color = (name, fallback) => (css.getPropertyValue(name) || fallback).trim();
  const fmt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });

  function draw(el) {
    const source = document.getElementById(el.dataset.chart);
    if (!source) return;
    const data = JSON.parse(source.textContent);
    if (!data.x || !data.x.length) {
      el.innerHTML = '<p class="small muted">No data yet.</p>';
      return;
    }
    const unit = el.dataset.unit || "";
    const bars = el.dataset.kind === "bars";
    const stroke = el.dataset.color ? color(el.dataset.color, "#6cb6ff") : color("--accent", "#6cb6ff");
    const series = {
      label: el.dataset.label || "value",
      stroke,
      width: 1.5,
      fill: bars ? stroke + "66" : stroke + "22",
      value: (u, v) => (v == null ? "—" : `${fmt.format(v)} ${unit}`),
    };
    if (bars) {
      series.paths = uPlot.paths.bars({ size: [0.7, 40] });
      series.points = { show: false };
    }
    const axis = { stroke: color("--muted", "#8a96a3"), grid: { stroke: color("--line", "#283039"), width: 1 }, ticks: { stroke: color("--line", "#283039") } };
    const opts = {
      width: Math.max(300, el.clientWidth),
      height: parseInt(el.dataset.height || "180", 10),
      series: [{}, series],
      axes: [axis, Object.assign({}, axis, { size: 70, values: (u, vals) => vals.map((v) => fmt.format(v)) })],
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
    };
    if (el.dataset.thresholds) {
      const lines = JSON.parse(el.dataset.thresholds);
      opts.hooks = {
        draw: [(u) => {
          const ctx = u.ctx;
          lines.forEach((t) => {
            const y = u.valToPos(t.value, "y", true);
            ctx.save();
            ctx.strokeStyle = color(t.color || "--warn", "#d29922");
            ctx.setLineDash([4, 4]);
            ctx.beginPath();
            ctx.moveTo(u.bbox.left, y);
            ctx.lineTo(u.bbox.left + u.bbox.width, y);
            ctx.stroke();
            ctx.restore();
          });
        }],
      };
    }
    el.innerHTML = "";
    const plot = new uPlot(opts, [data.x, data.y], el);
    window.addEventListener("resize", () => plot.setSize({ width: Math.max(300, el.clientWidth), height: opts.height }));
  }

  document.querySelectorAll("div.chart[data-chart]").forEach(draw);
})();
