// Charts for console pages with uPlot (installed by `make assets`, served from /static/vendor/uplot/).
// A <div class="chart" data-chart="<json_script id>"> with {"x": [unix s], "y": [numbers]} becomes a
// line (or bar) chart; data-label / data-unit / data-kind="bars" / data-digits (decimals shown, default 2)
// tune it; data-thresholds='[{"value": v, "color": "--warn", "label": "trip"}]' draws dashed levels, always
// in view and labelled with their value; the y axis is sized to its longest label and titled with the unit.
// Drawn charts are kept in XBIT_CHARTS by id: XBIT_CHARTS.append(id, x, y) adds a live point.
(function () {
  "use strict";
  if (!window.uPlot) return;
  const css = getComputedStyle(document.documentElement);
  const color = (name, fallback) => (css.getPropertyValue(name) || fallback).trim();
  const charts = {};
  window.XBIT_CHARTS = {
    get: (id) => charts[id],
    append(id, x, y, maxPoints) {
      const c = charts[id];
      if (!c || typeof x !== "number" || typeof y !== "number" || !isFinite(y)) return false;
      if (c.empty) { // the first point: draw the chart now
        document.getElementById(id).textContent = JSON.stringify({ x: [x], y: [y] });
        draw(c.el);
        return true;
      }
      const xs = c.data[0];
      if (xs.length && x <= xs[xs.length - 1]) return false; // already shown
      c.data[0].push(x);
      c.data[1].push(y);
      const limit = maxPoints || 2000;
      if (c.data[0].length > limit) { c.data[0].shift(); c.data[1].shift(); }
      c.plot.setData(c.data);
      return true;
    },
  };

  function draw(el) {
    const source = document.getElementById(el.dataset.chart);
    if (!source) return;
    const data = JSON.parse(source.textContent);
    if (!data.x || !data.x.length) {
      el.innerHTML = '<p class="small muted">No data yet.</p>';
      charts[el.dataset.chart] = { el, empty: true };
      return;
    }
    const unit = el.dataset.unit || "";
    const digits = parseInt(el.dataset.digits || "2", 10);
    const fmt = new Intl.NumberFormat("en-US", { maximumFractionDigits: digits });
    const small = new Intl.NumberFormat("en-US", { maximumSignificantDigits: 4 });
    // a value below 1 keeps 4 significant digits (a 0.0004 coin deviation is not "0")
    const num = (v) => (v !== 0 && Math.abs(v) < 1 ? small.format(v) : fmt.format(v));
    // axis ticks: as many decimals as the tick step needs
    const tick = (vals, incr) => {
      const decimals = incr > 0 ? (incr.toFixed(10).replace(/0+$/, "").split(".")[1] || "").length : digits;
      const places = Math.min(10, decimals);
      const f = new Intl.NumberFormat("en-US", { minimumFractionDigits: 0, maximumFractionDigits: places });
      return vals.map((v) => f.format(v));
    };
    const bars = el.dataset.kind === "bars";
    const stroke = el.dataset.color ? color(el.dataset.color, "#6cb6ff") : color("--accent", "#6cb6ff");
    const series = {
      label: el.dataset.label || "value",
      stroke,
      width: 1.5,
      fill: bars ? stroke + "66" : stroke + "22",
      value: (u, v) => (v == null ? "—" : `${num(v)} ${unit}`),
    };
    if (bars) {
      series.paths = uPlot.paths.bars({ size: [0.7, 40] });
      series.points = { show: false };
    }
    const axis = { stroke: color("--muted", "#8a96a3"), grid: { stroke: color("--line", "#283039"), width: 1 }, ticks: { stroke: color("--line", "#283039") } };
    // the y axis is as wide as its longest label (a fixed width clipped "1,000,200" to ",000,200")
    const fitSize = (u, values, axisIdx, cycleNum) => {
      const a = u.axes[axisIdx];
      if (cycleNum > 1 && a._size) return a._size;
      let size = (a.ticks && a.ticks.size ? a.ticks.size : 10) + (a.gap || 5) + 8;
      const longest = (values || []).reduce((acc, v) => (String(v).length > acc.length ? String(v) : acc), "");
      if (longest) {
        u.ctx.save();
        u.ctx.font = a.font && a.font[0] ? a.font[0] : "12px sans-serif";
        size += u.ctx.measureText(longest).width / (window.devicePixelRatio || 1);
        u.ctx.restore();
      }
      return Math.ceil(size);
    };
    const opts = {
      width: Math.max(300, el.clientWidth),
      height: parseInt(el.dataset.height || "180", 10),
      series: [{}, series],
      axes: [
        Object.assign({}, axis, { space: 70 }),
        Object.assign({}, axis, { size: fitSize, values: (u, vals, axis, space, incr) => tick(vals, incr) }, unit ? { label: unit, labelSize: 16 } : {}),
      ],
      legend: { show: true },
      // one point (or several at one time) would stretch the time axis over years: show the hour before it
      scales: { x: { time: true, range: (u, min, max) => {
        const xs = u.data[0];
        if (xs && xs.length && xs[xs.length - 1] - xs[0] < 60) return [xs[0] - 3600, xs[xs.length - 1] + 60];
        return [min, max];
      } } },
      cursor: { drag: { x: false, y: false } },
    };
    if (el.dataset.thresholds) {
      const lines = JSON.parse(el.dataset.thresholds);
      const top = Math.max(...lines.map((t) => t.value));
      const bottom = Math.min(...lines.map((t) => t.value));
      // the levels stay in view even when every value is far below (or above) them
      opts.scales.y = { range: (u, min, max) => {
        const lo = Math.min(min, bottom, 0);
        const hi = Math.max(max, top);
        return [lo, hi + (hi - lo) * 0.08 || 1];
      } };
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
            // the level says what it is and its value, so it reads on any scale
            const dpr = window.devicePixelRatio || 1;
            ctx.setLineDash([]);
            ctx.fillStyle = ctx.strokeStyle;
            ctx.font = `${11 * dpr}px sans-serif`;
            ctx.textAlign = "right";
            ctx.fillText(`${t.label ? t.label + " " : ""}${num(t.value)} ${unit}`.trim(), u.bbox.left + u.bbox.width - 4 * dpr, y - 3 * dpr);
            ctx.restore();
          });
        }],
      };
    }
    el.innerHTML = "";
    const series_data = [data.x.slice(), data.y.slice()];
    const plot = new uPlot(opts, series_data, el);
    charts[el.dataset.chart] = { plot, data: series_data };
    window.addEventListener("resize", () => plot.setSize({ width: Math.max(300, el.clientWidth), height: opts.height }));
  }

  document.querySelectorAll("div.chart[data-chart]").forEach(draw);
})();
