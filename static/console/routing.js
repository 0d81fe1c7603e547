// Routing page: follows the "routing" topic. Any push (mode switch, config edit, force-HL, HL halt)
// re-reads this page from the server and swaps the live regions in place — the server stays the one
// place that renders routing state, and a second operator sees a change without reloading. It also
// follows "exposure" (each INTERNAL fill moves an asset's net exposure): the B-book exposure column and
// the HL_MODE banner's recommended hedge size ([data-hedge-size]) are re-read at most once a second.
(function () {
  "use strict";
  if (!window.XBIT) return;
  const REGIONS = ["#routing-banners", "#assets-table tbody", "#mode-log tbody", "#routing-assets .card-head .muted"];
  const liveLabel = document.getElementById("routing-live");
  let lastPushAt = 0;
  let timer = null;
  let pending = false;

  async function refresh() {
    timer = null;
    if (XBIT.dialogOpen()) { pending = true; return; } // never swap a form out from under a confirmation
    pending = false;
    let html;
    try {
      const response = await fetch(location.href, { headers: { "X-Requested-With": "fetch" }, credentials: "same-origin" });
      if (!response.ok) return;
      html = await response.text();
    } catch (e) { return; }
    const fresh = new DOMParser().parseFromString(html, "text/html");
    REGIONS.forEach((selector) => {
      const now = document.querySelector(selector);
      const next = fresh.querySelector(selector);
      if (now && next) now.innerHTML = next.innerHTML;
    });
    const filter = document.querySelector("input[data-filter-table]");
    if (filter && filter.value) filter.dispatchEvent(new Event("input"));
    document.querySelectorAll("#mode-log tbody tr").forEach((tr, i) => { if (i === 0) tr.classList.add("flash-row"); });
  }

  function schedule() {
    lastPushAt = Date.now();
    if (!timer) timer = setTimeout(refresh, 150); // coalesce bursts
  }

  // exposure moves with every fill: one re-read per second at most, whatever the fill rate
  const EXPOSURE_GAP_MS = 1000;
  let lastExposureRead = 0;
  function exposureChanged(data) {
    if (!data || !data.asset || timer) return;
    const known = document.querySelector(`#assets-table tr[data-asset="${CSS.escape(data.asset)}"]`);
    if (!known) return;
    const wait = Math.max(150, lastExposureRead + EXPOSURE_GAP_MS - Date.now());
    lastExposureRead = Date.now() + wait;
    lastPushAt = Date.now();
    timer = setTimeout(refresh, wait);
  }

  XBIT.on("topic:routing", schedule);
  XBIT.on("topic:exposure", exposureChanged);
  XBIT.on("dialog-closed", () => { if (pending) setTimeout(refresh, 50); });
  XBIT.on("subscribed", (d) => {
    if (liveLabel && d.topics && d.topics.indexOf("routing") >= 0) liveLabel.textContent = "live: subscribed";
  });
  XBIT.on("tick", () => {
    if (liveLabel && lastPushAt) liveLabel.textContent = `live: last change ${XBIT.ageText((Date.now() - lastPushAt) / 1000)}`;
  });
  XBIT.subscribe(["routing", "exposure"]);
})();
