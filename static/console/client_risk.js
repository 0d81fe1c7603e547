// Multi-series uPlot charts of the client-risk page. A <div class="curve-chart" data-curves="<json_script
// id>"> with {"x": [...], "labels": [...]?, "series": [{"label", "y": [...]}]} becomes a line chart; with
// data-time="1" x is unix seconds, otherwise x indexes "labels" (the markout horizons); data-daily="1": one
// point per UTC day, ticks on days only (an hour axis under daily figures read as intraday moves).
(function () {
  "use strict";
  if (!window.uPlot) return;
  const css = getComputedStyle(document.documentElement);
  const palette = ["--accent", "--orange", "--warn", "--good", "--bad", "--muted"].map(
    (name, i) => (css.getPropertyValue(name) || ["#6cb6ff", "#f0883e", "#d29922", "#3fb950", "#f85149", "#8b949e"][i]).trim()
  );
  document.querySelectorAll(".curve-chart").forEach((el) => {
    const source = document.getElementById(el.dataset.curves);
    if (!source) return;
    const data = JSON.parse(source.textContent);
    if (!data.x || !data.x.length || !data.series.length) {
      el.innerHTML = '<p class="small muted">No data yet.</p>';
      return;
    }
    const timeAxis = el.dataset.time === "1";
    const line = (css.getPropertyValue("--line") || "#283039").trim();
    const axis = { stroke: (css.getPropertyValue("--muted") || "#8a96a3").trim(), grid: { stroke: line, width: 1 }, ticks: { stroke: line } };
    const labels = data.labels || [];
    const unit = el.dataset.unit || "";
    const daily = timeAxis && el.dataset.daily === "1";
    const dayLabel = (v) => new Date(v * 1000).toLocaleDateString(undefined, { month: "short", day: "numeric", timeZone: "UTC" });
    const xAxis = !timeAxis
      ? Object.assign({}, axis, { values: (u, vals) => vals.map((v) => (Number.isInteger(v) ? labels[v] || "" : "")), incrs: [1] })
      : daily
        ? Object.assign({}, axis, { incrs: [86400, 2 * 86400, 7 * 86400, 30 * 86400], values: (u, vals) => vals.map(dayLabel) })
        : axis;
    const opts = {
      width: Math.max(320, el.clientWidth || 600),
      height: 220,
      scales: { x: { time: timeAxis } },
      axes: [xAxis, Object.assign({}, axis, { label: unit, size: 70 })],
      cursor: { drag: { x: false, y: false } },
      series: [{}].concat(
        data.series.map((s, i) => ({ label: s.label, stroke: palette[i % palette.length], width: 2, points: { show: !timeAxis || daily }, spanGaps: true }))
      ),
    };
    new uPlot(opts, [data.x].concat(data.series.map((s) => s.y)), el);
  });
})();
