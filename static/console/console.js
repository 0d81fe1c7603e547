// Console live channel: one websocket per page, reconnecting with backoff, showing the age of the last
// message so a frozen page is visible. Pages listen with XBIT.on(type, handler) and follow server
// topics with XBIT.subscribe(["routing", ...]) + XBIT.on("topic:routing", handler).
//
// A page that follows no topic connects to /ws/console/heartbeat/; one that does connects to
// /ws/console/topics/ (the same heartbeat plus subscriptions) — still one socket per page.
(function () {
  "use strict";
  const handlers = {};
  const topics = new Set();
  let socket = null;
  let socketHasTopics = false;
  let started = false;
  let lastMessageAt = 0;
  let backoff = 500;
  const indicator = document.getElementById("live-indicator");
  const ageLabel = document.getElementById("live-age");

  function emit(type, payload) {
    (handlers[type] || []).forEach((fn) => {
      try { fn(payload); } catch (e) { console.error(e); }
    });
  }

  function sendSubscribe() {
    if (socket && socket.readyState === WebSocket.OPEN && topics.size) {
      socket.send(JSON.stringify({ type: "subscribe", topics: Array.from(topics) }));
    }
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socketHasTopics = topics.size > 0;
    const path = socketHasTopics ? "/ws/console/topics/" : "/ws/console/heartbeat/";
    const ws = new WebSocket(`${scheme}://${location.host}${path}`);
    socket = ws;
    ws.onopen = () => {
      backoff = 500;
      indicator && indicator.classList.add("ok");
      indicator && indicator.classList.remove("down");
      sendSubscribe();
      emit("open", {});
      ping();
    };
    ws.onmessage = (event) => {
      lastMessageAt = performance.now();
      let data;
      try { data = JSON.parse(event.data); } catch (e) { return; }
      if (data.type === "pong" && typeof data.echo === "number") {
        emit("rtt", { ms: performance.now() - data.echo });
      }
      if (data.type === "update" && data.topic) {
        emit(`topic:${data.topic}`, data.data || {});
      }
      emit(data.type, data);
    };
    ws.onclose = () => {
      if (socket !== ws) return; // replaced on purpose (switched to the topics endpoint)
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

  function ageText(seconds) {
    if (seconds < 0) seconds = 0;
    if (seconds < 60) return `${Math.floor(seconds)} s ago`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
    return `${Math.floor(seconds / 86400)} d ago`;
  }

  function age() {
    if (!lastMessageAt) return "no data yet";
    const s = (performance.now() - lastMessageAt) / 1000;
    return `updated ${s < 10 ? s.toFixed(1) : Math.round(s)} s ago`;
  }

  function refreshAges() {
    const now = Date.now() / 1000;
    document.querySelectorAll("time.age[data-ts]").forEach((el) => {
      const ts = parseFloat(el.dataset.ts);
      if (!isNaN(ts)) el.textContent = ageText(now - ts);
    });
  }

  setInterval(() => {
    if (ageLabel) ageLabel.textContent = socket && socket.readyState === WebSocket.OPEN ? age() : "reconnecting…";
    emit("tick", { age: age() });
  }, 250);
  setInterval(refreshAges, 1000);
  setInterval(ping, 5000);

  // --- confirmation dialog ------------------------------------------------------------------------
  // A form with data-confirm="consequence" is submitted only after the dialog is confirmed.
  // data-reason="required|optional" asks for a reason, copied into the form's hidden "reason" input.
  const dialog = document.getElementById("confirm-dialog");
  let pendingForm = null;

  function openConfirm(form) {
    if (!dialog) return true;
    pendingForm = form;
    dialog.querySelector(".confirm-title").textContent = form.dataset.confirmTitle || "Are you sure?";
    // "{value}" in the consequence is replaced by what the form is about to submit
    const valueInput = form.querySelector("[name=value]");
    dialog.querySelector(".confirm-text").textContent =
      form.dataset.confirm.replace(/\{value\}/g, valueInput ? valueInput.value.trim() || "(empty)" : "");
    const reasonMode = form.dataset.reason || "";
    const reasonBox = dialog.querySelector(".confirm-reason");
    const reasonInput = dialog.querySelector("textarea[name=confirm_reason]");
    reasonBox.hidden = !reasonMode;
    reasonInput.required = reasonMode === "required";
    reasonInput.value = "";
    reasonBox.querySelector(".confirm-reason-label").textContent =
      reasonMode === "required" ? "Reason (required, audit-logged)" : "Note (optional, audit-logged)";
    const ok = dialog.querySelector(".confirm-ok");
    ok.textContent = form.dataset.confirmButton || "Confirm";
    ok.classList.toggle("danger", !!form.dataset.danger);
    dialog.querySelector(".confirm-error").textContent = "";
    dialog.showModal();
    (reasonMode ? reasonInput : ok).focus();
    return false;
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.confirm) return;
    if (form.dataset.confirmed === "1") return;
    event.preventDefault();
    openConfirm(form);
  }, true);

  if (dialog) {
    dialog.querySelector(".confirm-ok").addEventListener("click", (event) => {
      event.preventDefault();
      if (!pendingForm) return dialog.close();
      const reasonInput = dialog.querySelector("textarea[name=confirm_reason]");
      if (reasonInput.required && !reasonInput.value.trim()) {
        dialog.querySelector(".confirm-error").textContent = "A reason is required.";
        reasonInput.focus();
        return;
      }
      const hidden = pendingForm.querySelector("input[type=hidden][name=reason]");
      if (hidden && !dialog.querySelector(".confirm-reason").hidden) hidden.value = reasonInput.value.trim();
      const form = pendingForm;
      pendingForm = null;
      dialog.close();
      form.dataset.confirmed = "1";
      form.querySelectorAll("button[type=submit]").forEach((b) => { b.disabled = true; });
      HTMLFormElement.prototype.submit.call(form);
    });
    dialog.querySelector(".confirm-cancel").addEventListener("click", (event) => {
      event.preventDefault();
      pendingForm = null;
      dialog.close();
    });
    dialog.addEventListener("close", () => { pendingForm = null; emit("dialog-closed", {}); });
  }

  // --- table filter: <input data-filter-table="id"> hides rows whose text does not match --------------
  document.querySelectorAll("input[data-filter-table]").forEach((input) => {
    input.addEventListener("input", () => {
      const needle = input.value.trim().toLowerCase();
      const table = document.getElementById(input.dataset.filterTable);
      if (!table) return;
      table.querySelectorAll("tbody tr").forEach((tr) => {
        tr.hidden = needle && !tr.textContent.toLowerCase().includes(needle);
      });
    });
  });

  // Keyboard: "g" then a letter jumps to a page (letters shown as tooltips in the nav); "/" focuses the
  // page's search or filter box; Escape leaves a field.
  let awaitingKey = false;
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && event.target.closest("input, textarea, select")) {
      event.target.blur();
      return;
    }
    if (event.target.closest("input, textarea, select, dialog") || event.metaKey || event.ctrlKey || event.altKey) return;
    if (awaitingKey) {
      awaitingKey = false;
      const link = document.querySelector(`.nav a[data-key="${event.key}"]`);
      if (link) link.click();
      return;
    }
    if (event.key === "g") awaitingKey = true;
    if (event.key === "/") {
      const box = document.querySelector("[data-hotkey='/'], input.filter, .filters input");
      if (box) { event.preventDefault(); box.focus(); }
    }
  });

  window.XBIT = {
    on(type, fn) { (handlers[type] = handlers[type] || []).push(fn); },
    send(obj) { if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(obj)); },
    subscribe(list) {
      (list || []).forEach((t) => topics.add(t));
      if (!started) return; // connect() picks them up
      if (!socketHasTopics) {
        const old = socket;
        connect(); // move to the topics endpoint; the old heartbeat socket is dropped
        if (old) { old.onclose = null; old.close(); }
      } else {
        sendSubscribe();
      }
    },
    ageText,
    dialogOpen() { return !!(dialog && dialog.open); },
  };

  // Overview shell widgets.
  const status = document.getElementById("hb-status");
  if (status) {
    XBIT.on("open", () => { status.textContent = "connected"; });
    XBIT.on("close", () => { status.textContent = "reconnecting…"; });
    XBIT.on("rtt", (d) => { document.getElementById("hb-rtt").textContent = `${d.ms.toFixed(1)} ms`; });
    XBIT.on("tick", (d) => { document.getElementById("hb-age").textContent = d.age; });
  }
  // Page scripts (deferred, after this one) may subscribe before the socket opens.
  const topicAttr = document.body.dataset.topics;
  if (topicAttr) topicAttr.split(/[\s,]+/).filter(Boolean).forEach((t) => topics.add(t));
  function start() { started = true; connect(); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
