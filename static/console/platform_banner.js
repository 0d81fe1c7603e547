// Platform-state banner (issue #21): what the platform is doing right now, on every console page, in plain
// words with the live figures, each line linked to its runbook. Polls /platform-state.json; a new open P0
// alert shows a toast (and a short tone if the operator turned sound on for this browser).
(function () {
  "use strict";
  const root = document.getElementById("platform-banner");
  if (!root) return;
  const url = root.dataset.url;
  const seenKey = "xbit-p0-seen";
  const soundKey = "xbit-p0-sound";
  let first = true;

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function seen() {
    try { return new Set(JSON.parse(sessionStorage.getItem(seenKey) || "[]")); } catch (e) { return new Set(); }
  }

  function tone() {
    if (localStorage.getItem(soundKey) !== "on") return;
    try {
      const ctx = new (window.AudioContext || window.webkitAudioContext)();
      const osc = ctx.createOscillator();
      osc.frequency.value = 880;
      osc.connect(ctx.destination);
      osc.start();
      osc.stop(ctx.currentTime + 0.25);
    } catch (e) { /* no audio: the toast is enough */ }
  }

  function toast(alert) {
    const box = document.getElementById("toasts") || document.body.appendChild(el("div", "toasts"));
    box.id = "toasts";
    const t = el("div", "toast bad");
    t.setAttribute("role", "alert");
    t.appendChild(el("strong", "", "New P0: " + alert.rule + " "));
    t.appendChild(el("span", "", alert.message + " "));
    const a = el("a", "", "runbook →");
    a.href = alert.runbook;
    t.appendChild(a);
    const close = el("button", "link", "×");
    close.type = "button";
    close.setAttribute("aria-label", "dismiss");
    close.addEventListener("click", () => t.remove());
    t.appendChild(close);
    box.appendChild(t);
  }

  function render(state) {
    root.replaceChildren();
    root.className = "platform-banner " + state.level;
    root.dataset.level = state.level;
    if (state.ok) {
      root.appendChild(el("span", "pb-ok", state.summary));
    } else {
      const list = el("ul", "pb-items");
      for (const item of state.items) {
        const li = el("li", "pb-item " + item.level);
        li.dataset.key = item.key;
        li.appendChild(el("span", "", item.text + " "));
        if (item.runbook) {
          const a = el("a", "pb-runbook", "runbook");
          a.href = item.runbook;
          li.appendChild(a);
        }
        list.appendChild(li);
      }
      root.appendChild(list);
    }
    const sound = el("button", "link pb-sound", localStorage.getItem(soundKey) === "on" ? "P0 sound: on" : "P0 sound: off");
    sound.type = "button";
    sound.addEventListener("click", () => {
      localStorage.setItem(soundKey, localStorage.getItem(soundKey) === "on" ? "off" : "on");
      sound.textContent = localStorage.getItem(soundKey) === "on" ? "P0 sound: on" : "P0 sound: off";
    });
    root.appendChild(sound);
    const known = seen();
    const fresh = state.p0.filter((a) => !known.has(a.id));
    if (fresh.length) {
      // on the first load of a tab, P0s already open are listed, not announced
      if (!first || !sessionStorage.getItem(seenKey)) fresh.forEach(toast);
      if (!first) tone();
      state.p0.forEach((a) => known.add(a.id));
      sessionStorage.setItem(seenKey, JSON.stringify([...known]));
    }
    first = false;
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : null))
      .then((state) => { if (state) render(state); })
      .catch(() => { root.dataset.level = "unknown"; });
  }

  poll();
  setInterval(poll, 5000);
})();
