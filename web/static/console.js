// Hotline console: live queue counters without reordering the page, and click-to-load images.
(function () {
  "use strict";
  var POLL_MS = 15000;

  function pollQueue(table) {
    var base = table.getAttribute("data-poll");
    var refs = Array.prototype.map.call(table.querySelectorAll("tbody tr[data-ref]"), function (row) {
      return "ref=" + encodeURIComponent(row.getAttribute("data-ref"));
    });
    var url = base + (refs.length ? "&" + refs.join("&") : "");
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        document.querySelectorAll("[data-count]").forEach(function (el) {
          var key = el.getAttribute("data-count");
          if (key in data) { el.textContent = String(data[key]); }
        });
        var banner = document.getElementById("new-tickets");
        if (banner) {
          banner.hidden = !(data.new_tickets > 0);
          var count = banner.querySelector("[data-new-count]");
          if (count) { count.textContent = String(data.new_tickets); }
        }
        Object.keys(data.tickets || {}).forEach(function (ref) {
          var row = table.querySelector('tr[data-ref="' + ref.replace(/"/g, "") + '"]');
          if (!row) { return; }
          var t = data.tickets[ref];
          var status = row.querySelector('[data-field="status"]');
          if (status) { status.textContent = t.status_label; }
          var assignee = row.querySelector('[data-field="assignee"]');
          if (assignee) { assignee.textContent = t.assignee; }
          var priority = row.querySelector('[data-field="priority"]');
          if (priority) { priority.textContent = t.priority; priority.className = "chip prio " + t.priority; }
        });
        document.body.setAttribute("data-polled", String(Date.now()));
      })
      .catch(function () { /* offline for a moment: try again next tick */ });
  }

  function queueKeys(table) {
    // j / k move the highlight, Enter opens the ticket, t takes it (a form post with the token).
    var current = -1;
    function rows() { return table.querySelectorAll("tbody tr[data-ref]"); }
    function mark(index) {
      var all = rows();
      if (!all.length) { return; }
      current = Math.max(0, Math.min(all.length - 1, index));
      all.forEach(function (row, i) { row.classList.toggle("current", i === current); });
      all[current].scrollIntoView({ block: "nearest" });
    }
    document.addEventListener("keydown", function (event) {
      var target = event.target;
      if (event.ctrlKey || event.metaKey || event.altKey) { return; }
      if (target && /^(INPUT|TEXTAREA|SELECT|BUTTON)$/.test(target.tagName)) { return; }
      var row = rows()[current];
      if (event.key === "j") { mark(current + 1); event.preventDefault(); }
      else if (event.key === "k") { mark(current - 1); event.preventDefault(); }
      else if (event.key === "Enter" && row) {
        window.location.href = row.querySelector("a").getAttribute("href");
        event.preventDefault();
      } else if (event.key === "t" && row) {
        var form = document.createElement("form");
        form.method = "post";
        form.action = table.getAttribute("data-take").replace(/_$/, encodeURIComponent(row.getAttribute("data-ref")));
        var token = document.createElement("input");
        token.type = "hidden"; token.name = "csrf_token"; token.value = table.getAttribute("data-csrf");
        form.appendChild(token);
        document.body.appendChild(form);
        form.submit();
        event.preventDefault();
      }
    });
  }

  function loadImages(button) {
    var box = button.previousElementSibling;
    if (!box) { return; }
    box.querySelectorAll("img[data-remote-src]").forEach(function (img) {
      var src = img.getAttribute("data-remote-src");
      if (/^https?:\/\//i.test(src)) { img.setAttribute("src", src); }
      img.removeAttribute("data-remote-src");
    });
    button.remove();
  }

  function uploadWithProgress(form) {
    var bar = document.getElementById("upload-progress");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.getAttribute("action") || window.location.href);
      bar.hidden = false;
      xhr.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable) { bar.value = Math.round((100 * e.loaded) / e.total); }
      });
      xhr.upload.addEventListener("load", function () { showWorking(form); });
      xhr.addEventListener("load", function () {
        document.open();
        document.write(xhr.responseText);
        document.close();
      });
      xhr.send(new FormData(form));
    });
  }

  function showWorking(form) {
    // The file is sent (or the form submitted): the server is still working on the rows.
    var bar = form.querySelector("progress");
    bar.removeAttribute("value");
    bar.hidden = false;
    form.querySelector(".progress-status").hidden = false;
    form.querySelector("button[type=submit]").disabled = true;
  }

  document.addEventListener("DOMContentLoaded", function () {
    var importForm = document.getElementById("import-form");
    if (importForm) { uploadWithProgress(importForm); }
    var confirmForm = document.getElementById("import-confirm");
    if (confirmForm) {
      confirmForm.addEventListener("submit", function () { showWorking(confirmForm); });
    }
    var table = document.getElementById("queue");
    if (table && table.getAttribute("data-take")) { queueKeys(table); }
    if (table && table.getAttribute("data-poll")) {
      pollQueue(table);
      var seconds = parseFloat(table.getAttribute("data-poll-seconds"));
      setInterval(function () { pollQueue(table); }, seconds > 0 ? seconds * 1000 : POLL_MS);
    }
    document.querySelectorAll("button.load-images").forEach(function (button) {
      button.addEventListener("click", function () { loadImages(button); });
    });
    var language = document.getElementById("language-form");
    if (language) {
      var select = language.querySelector("select");
      select.addEventListener("change", function () { language.submit(); });
      // The select sends itself; the button is for browsers without scripts.
      var button = language.querySelector("button");
      if (button) { button.hidden = true; }
    }
  });
})();
