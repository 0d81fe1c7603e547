// Overview: follows "overview" (the live region re-rendered by the server at most once a second, only
// sent when it changed) and "exposure" (the risk consumer's push on every INTERNAL fill: the asset's
// net exposure figure is updated at once, before the next region refresh). Shows the data's age.
(function () {
  "use strict";
  if (!window.XBIT) return;
  const region = document.getElementById("overview-live");
  const ageLabel = document.getElementById("ov-age");
  const money0 = new Intl.NumberFormat("en-US", { minimumFractionDigits: 0, maximumFractionDigits: 0 });
  let lastAt = 0;

  function flash(el) {
    el.classList.remove("flash-num");
    void el.offsetWidth;
    el.classList.add("flash-num");
  }

  XBIT.on("topic:overview", (data) => {
    lastAt = Date.now();
    if (data.html != null && region) region.innerHTML = data.html;
  });

  XBIT.on("topic:exposure", (data) => {
    if (!data || !data.asset) return;
    lastAt = Date.now();
    const cell = document.querySelector(`[data-net-asset="${data.asset}"]`);
    if (!cell) return; // a new asset: the next region refresh adds its row
    const value = Number(data.net_notional);
    if (!isFinite(value)) return;
    cell.dataset.value = String(value);
    cell.textContent = money0.format(value);
    flash(cell);
    [["long", data.long_notional], ["short", data.short_notional]].forEach(([side, v]) => {
      const el = document.querySelector(`[data-${side}-asset="${data.asset}"]`);
      if (el && isFinite(Number(v))) el.textContent = money0.format(Number(v));
    });
    const total = document.getElementById("ov-total-exposure");
    if (total) {
      let sum = 0;
      document.querySelectorAll("[data-net-asset]").forEach((el) => { sum += Math.abs(Number(el.dataset.value) || 0); });
      total.firstChild.textContent = money0.format(sum);
    }
  });

  XBIT.on("tick", () => {
    if (!ageLabel) return;
    if (!lastAt) { ageLabel.textContent = "waiting for data…"; return; }
    const s = (Date.now() - lastAt) / 1000;
    ageLabel.textContent = `updated ${s < 10 ? s.toFixed(1) : Math.round(s)} s ago`;
    ageLabel.classList.toggle("stale", s > 3);
  });
  XBIT.subscribe(document.getElementById("exposure-table") ? ["overview", "exposure"] : ["overview"]);
})();
