// Live regions for pages whose rows the server renders: an element #region-live with
// data-live-topics="a,b" and data-live-regions="<css selectors>" re-reads the page when one of the
// topics pushes (coalesced, never while a confirmation is open) and swaps those regions in place.
(function () {
  "use strict";
  const label = document.getElementById("region-live");
  if (!window.XBIT || !label) return;
  const topics = label.dataset.liveTopics.split(/[\s,]+/).filter(Boolean);
  const regions = label.dataset.liveRegions.split(",").map((s) => s.trim()).filter(Boolean);
  let timer = null;
  let lastAt = 0;

  async function refresh() {
    timer = null;
    if (XBIT.dialogOpen()) { timer = setTimeout(refresh, 500); return; }
    let html;
    try {
      const response = await fetch(location.href, { credentials: "same-origin" });
      if (!response.ok) return;
      html = await response.text();
    } catch (e) { return; }
    const fresh = new DOMParser().parseFromString(html, "text/html");
    regions.forEach((selector) => {
      const now = document.querySelector(selector);
      const next = fresh.querySelector(selector);
      if (now && next) now.innerHTML = next.innerHTML;
    });
    lastAt = Date.now();
  }

  topics.forEach((topic) => XBIT.on(`topic:${topic}`, () => {
    if (label.dataset.firstPageOnly && location.search.includes("before=")) return;
    if (!timer) timer = setTimeout(refresh, 200);
  }));
  XBIT.on("subscribed", () => { if (!lastAt) label.textContent = "live: subscribed"; });
  XBIT.on("tick", () => { if (lastAt) label.textContent = `live: updated ${XBIT.ageText((Date.now() - lastAt) / 1000)}`; });
  XBIT.subscribe(topics);
})();
