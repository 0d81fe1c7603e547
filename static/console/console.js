// Console live channel: one websocket per page, reconnecting with backoff, showing the age of the last
// message so a frozen page is visible. Pages subscribe with XBIT.on(type, handler).
(function () {
  "use strict";
  const handlers = {};
  let socket = null;
  let lastMessageAt = 0;
  let backoff = 500;
  const indicator = document.getElementById("live-indicator");
  const ageLabel = document.getElementById("live-age");

  function emit(type, payload) {
    (handlers[type] || []).forEach((fn) => fn(payload));
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/ws/console/heartbeat/`);
    socket.onopen = () => {
      backoff = 500;
      indicator && indicator.classList.add("ok");
      indicator && indicator.classList.remove("down");
      emit("open", {});
      ping();
    };
    socket.onmessage = (event) => {
      lastMessageAt = performance.now();
      let data;
      try { data = JSON.parse(event.data); } catch (e) { return; }
      if (data.type === "pong" && typeof data.echo === "number") {
        emit("rtt", { ms: performance.now() - data.echo });
      }
      emit(data.type, data);
    };
    socket.onclose = () => {
      indicator && indicator.classList.remove("ok");
      indicator && indicator.classList.add("down");
      emit("close", {});
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 10000);
    };
  }

  function ping() {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: "ping", t: performance.now() }));
    }
  }

  function age() {
    if (!lastMessageAt) return "no data yet";
    const s = (performance.now() - lastMessageAt) / 1000;
    return `updated ${s < 10 ? s.toFixed(1) : Math.round(s)} s ago`;
  }

  setInterval(() => {
    if (ageLabel) ageLabel.textContent = socket && socket.readyState === WebSocket.OPEN ? age() : "reconnecting…";
    emit("tick", { age: age() });
  }, 250);
  setInterval(ping, 5000);

  // Keyboard: "g" then a letter jumps to a page (letters shown as tooltips in the nav).
  let awaitingKey = false;
  document.addEventListener("keydown", (event) => {
    if (event.target.closest("input, textarea, select") || event.metaKey || event.ctrlKey || event.altKey) return;
    if (awaitingKey) {
      awaitingKey = false;
      const link = document.querySelector(`.nav a[data-key="${event.key}"]`);
      if (link) link.click();
      return;
    }
    if (event.key === "g") awaitingKey = true;
  });

  window.XBIT = {
    on(type, fn) { (handlers[type] = handlers[type] || []).push(fn); },
    send(obj) { if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(obj)); },
  };

  // Overview shell widgets.
  const status = document.getElementById("hb-status");
  if (status) {
    XBIT.on("open", () => { status.textContent = "connected"; });
    XBIT.on("close", () => { status.textContent = "reconnecting…"; });
    XBIT.on("rtt", (d) => { document.getElementById("hb-rtt").textContent = `${d.ms.toFixed(1)} ms`; });
    XBIT.on("tick", (d) => { document.getElementById("hb-age").textContent = d.age; });
  }
  connect();
})();
