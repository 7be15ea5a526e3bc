// The desk's screen pop: polls /desk/live.json every second and shows who is calling.
(function () {
  "use strict";
  var root = document.getElementById("desk");
  if (!root) { return; }
  function el(id) { return document.getElementById(id); }
  function text(id, value) { el(id).textContent = value || ""; }
  function list(id, items, render) {
    var ul = el(id);
    ul.textContent = "";
    if (!items.length) {
      var li = document.createElement("li");
      li.textContent = root.dataset.lNone;
      ul.appendChild(li);
    }
    items.forEach(function (item) {
      var li = document.createElement("li");
      var a = document.createElement("a");
      a.href = root.dataset.ticket.replace("REF", item.ref);
      a.textContent = render(item);
      li.appendChild(a);
      ul.appendChild(li);
    });
  }
  function show(data) {
    text("desk-state", data.state_label);
    var call = data.call;
    el("screen-pop").hidden = !call;
    el("call-panel").hidden = !call || call.phase === "ringing";
    el("desk-idle").hidden = !!call;
    if (!call) { return; }
    el("screen-pop").dataset.phase = call.phase;
    text("pop-phase", root.dataset["l" + call.phase.charAt(0).toUpperCase() + call.phase.slice(1)] ||
      root.getAttribute("data-l-" + call.phase));
    text("pop-name", call.resident ? call.resident.name : root.dataset.lUnknown);
    text("pop-unit", call.unit);
    text("pop-language", call.language_label);
    text("pop-phone", call.phone);
    el("pop-search").hidden = !!call.resident;
    var search = el("pop-search-link");
    search.href = root.dataset.search + "?q=" + encodeURIComponent(call.phone || "");
    search.textContent = root.dataset.lSearch;
    list("pop-open", call.open_tickets, function (t) { return t.ref + " " + t.subject; });
    list("pop-last", call.last_contacts, function (t) { return t.ref + " · " + t.created_at.slice(0, 16).replace("T", " "); });
    el("pop-ticket").hidden = !call.ticket_ref;
    if (call.ticket_ref) {
      var link = el("pop-ticket-link");
      link.href = root.dataset.ticket.replace("REF", call.ticket_ref);
      link.textContent = call.ticket_ref;
    }
    var transfer = call.transfer;
    el("transfer-status").hidden = !transfer;
    if (transfer) { text("transfer-status", transfer.target_label + " · " + transfer.status_label); }
    el("hand-over").hidden = !transfer || transfer.status !== "consulting";
    document.querySelectorAll("#call-panel form").forEach(function (form) {
      form.action = "/desk/calls/" + call.desk_call_id + "/" + form.dataset.path;
    });
  }
  function poll() {
    fetch(root.dataset.live, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data) { show(data); } })
      .catch(function () {})
      .then(function () { window.setTimeout(poll, 1000); });
  }
  poll();
})();

// The wallboard: refreshes its figures every two seconds without a reload.
(function () {
  "use strict";
  var root = document.getElementById("wallboard");
  if (!root) { return; }
  var states = JSON.parse(root.dataset.states);
  function duration(s) {
    if (s === null || s === undefined) { return "—"; }
    s = Math.floor(s);
    return Math.floor(s / 60) + ":" + ("0" + (s % 60)).slice(-2);
  }
  function show(data) {
    root.querySelectorAll("[data-fig]").forEach(function (b) {
      var v = data[b.dataset.fig];
      if (b.dataset.kind === "duration") { b.textContent = duration(v); }
      else if (b.dataset.kind === "percent") { b.textContent = v === null ? "—" : Math.round(v) + "%"; }
      else { b.textContent = v; }
    });
    root.querySelectorAll("[data-state]").forEach(function (b) { b.textContent = data.operators[b.dataset.state]; });
    var body = document.getElementById("wall-ops");
    body.textContent = "";
    data.operator_list.forEach(function (op) {
      var tr = document.createElement("tr");
      [op.name, states[op.state] || op.state].forEach(function (v) {
        var td = document.createElement("td");
        td.textContent = v;
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
  }
  function poll() {
    fetch(root.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data) { show(data); } })
      .catch(function () {})
      .then(function () { window.setTimeout(poll, 2000); });
  }
  window.setTimeout(poll, 2000);
})();

// The browser softphone: Twilio's Voice SDK (vendored) rings here when the headset is on.
(function () {
  "use strict";
  var root = document.getElementById("softphone");
  if (!root) { return; }
  var toggle = root.querySelector("input[name=headset]");
  if (toggle) { toggle.addEventListener("change", function () { toggle.form.submit(); }); }
  if (root.dataset.headset !== "on") { return; }
  var status = document.getElementById("softphone-status");
  var answer = document.getElementById("softphone-answer");
  var hangup = document.getElementById("softphone-hangup");
  var current = null;
  function say(key) { status.textContent = root.getAttribute("data-l-" + key); status.dataset.state = key; }
  if (!window.Twilio || !window.Twilio.Device) { say("offline"); return; }
  function token() {
    return fetch(root.dataset.token, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json().then(function (body) { if (!r.ok) { throw new Error(body.error); } return body.token; }); });
  }
  function idle() { current = null; answer.disabled = true; hangup.disabled = true; say("ready"); }
  token().then(function (jwt) {
    var device = new window.Twilio.Device(jwt, { closeProtection: true });
    device.on("registered", function () { say("ready"); });
    device.on("error", function () { say("offline"); });
    device.on("unregistered", function () { say("offline"); });
    device.on("tokenWillExpire", function () { token().then(function (t) { device.updateToken(t); }); });
    device.on("incoming", function (call) {
      current = call;
      say("ringing");
      answer.disabled = false;
      hangup.disabled = false;
      call.on("disconnect", idle);
      call.on("cancel", idle);
      call.on("reject", idle);
    });
    answer.addEventListener("click", function () {
      if (!current) { return; }
      var call = current;
      call.accept();
      answer.disabled = true;
      say("talking");
      // The whisper asks for the accept key; the button is the key.
      window.setTimeout(function () { call.sendDigits("1"); }, 1000);
    });
    hangup.addEventListener("click", function () {
      if (!current) { return; }
      if (current.status() === "pending") { current.reject(); } else { current.disconnect(); }
    });
    say("connecting");
    device.register();
  }).catch(function () { say("offline"); });
})();
