// Hedge page: the hedge HL account's health, live. Follows "hl_accounts" (pushed by the server each
// time an HL account snapshot is written, coalesced to ≤ 4 per second per socket) and updates the
// margin ratio badge, the gauge, the figures, the 24 h chart and the age of the data in place.
(function () {
  "use strict";
  const card = document.querySelector("[data-live-account]");
  if (!window.XBIT || !card) return;
  const account = card.dataset.liveAccount;
  const ageLabel = document.getElementById("hedge-health-age");
  const money0 = new Intl.NumberFormat("en-US", { minimumFractionDigits: 0, maximumFractionDigits: 0 });
  const pct0 = new Intl.NumberFormat("en-US", { minimumFractionDigits: 0, maximumFractionDigits: 0 });
  let snapshotAt = 0; // seconds since the epoch, of the newest snapshot shown
  let subscribed = false;

  const field = (name) => card.querySelector(`[data-field="${name}"]`);

  function flash(el) {
    el.classList.remove("flash-num");
    void el.offsetWidth;
    el.classList.add("flash-num");
  }

  function level(ratio) {
    if (ratio == null) return "ok";
    if (ratio < 1.5) return "bad";
    if (ratio < 3) return "warn";
    return "ok";
  }

  function setMoney(name, value) {
    const el = field(name);
    const n = Number(value);
    if (!el || value == null || !isFinite(n)) return;
    const text = money0.format(n);
    if (el.textContent !== text) { el.textContent = text; flash(el); }
  }

  XBIT.on("topic:hl_accounts", (data) => {
    if (!data || data.account !== account || typeof data.at !== "number") return;
    if (data.at < snapshotAt) return; // an older snapshot arriving late
    snapshotAt = data.at;
    const figures = document.getElementById("hedge-health-figures");
    if (figures) figures.hidden = false;
    const empty = document.getElementById("hedge-health-empty");
    if (empty) empty.remove();

    const ratio = data.margin_ratio == null ? null : Number(data.margin_ratio);
    const badge = field("margin_ratio");
    if (badge) {
      const text = ratio == null ? "no position" : `${pct0.format(ratio * 100)}%`;
      if (badge.textContent !== text) { badge.textContent = text; flash(badge); }
      badge.classList.remove("ok", "warn", "bad");
      badge.classList.add(level(ratio));
    }
    const gauge = document.getElementById("hedge-gauge");
    if (gauge) {
      gauge.hidden = ratio == null;
      const needle = gauge.querySelector(".needle");
      if (needle && ratio != null) needle.style.left = `${Math.min(ratio * 10, 100).toFixed(1)}%`;
    }
    setMoney("account_value", data.account_value);
    setMoney("maintenance_margin_used", data.maintenance_margin_used);
    setMoney("withdrawable", data.withdrawable);
    const at = field("at");
    if (at) {
      let time = at.querySelector("time");
      if (!time) { time = document.createElement("time"); time.className = "age"; at.replaceChildren(time); }
      time.dataset.ts = String(data.at);
      time.title = new Date(data.at * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
      time.textContent = XBIT.ageText(Date.now() / 1000 - data.at);
    }
    if (ratio != null && window.XBIT_CHARTS) XBIT_CHARTS.append("hedge-ratio", Math.floor(data.at), ratio * 100);
    card.dataset.updated = String(data.at);
  });

  XBIT.on("subscribed", (d) => { subscribed = (d.topics || []).includes("hl_accounts"); });
  XBIT.on("tick", () => {
    if (!ageLabel) return;
    if (!snapshotAt) {
      ageLabel.textContent = subscribed ? "live: waiting for the next snapshot" : "live: connecting…";
      return;
    }
    const s = Math.max(0, Date.now() / 1000 - snapshotAt);
    ageLabel.textContent = `live · snapshot ${s < 10 ? s.toFixed(1) : Math.round(s)} s old`;
    ageLabel.classList.toggle("stale", s > 15); // the beat syncs the HL accounts every 5 s
  });
  XBIT.subscribe(["hl_accounts"]);
})();
