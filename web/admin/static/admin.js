// The template editor: live preview and SMS size while typing, save, versions and restore.
// Talks only to the console's JSON API (/admin/api/), sending the page's CSRF token.
(function () {
  "use strict";
  var root = document.getElementById("editor");
  if (!root) return;
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var id = root.dataset.id, api = root.dataset.api, previewUrl = root.dataset.preview;
  var body = document.getElementById("body"), save = document.getElementById("save");
  var revert = document.getElementById("revert"), status = document.getElementById("status");
  var saved = body.value, timer = null, seq = 0, lastCheck = null;

  function $(sel) { return document.getElementById(sel); }
  function call(method, url, data) {
    var opts = {method: method, headers: {"Accept": "application/json", "X-CSRFToken": csrf},
                credentials: "same-origin"};
    if (data !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(data);
    }
    return fetch(url, opts).then(function (r) {
      if (r.status === 401) { window.location = "/admin/login?next=" + encodeURIComponent(location.pathname); }
      return r.json().then(function (j) { return {status: r.status, json: j}; });
    });
  }
  function list(items, cls) {
    var ul = document.createElement("ul");
    ul.className = "problems";
    items.forEach(function (t) {
      var li = document.createElement("li");
      li.className = cls;
      li.textContent = t;
      ul.appendChild(li);
    });
    return ul;
  }
  function showProblems(errors, warnings) {
    var box = $("problems");
    box.textContent = "";
    if (errors.length) box.appendChild(list(errors, "error"));
    if (warnings.length) box.appendChild(list(warnings, "warning"));
  }
  function dirty() { return body.value !== saved; }
  function refreshButtons() {
    var broken = lastCheck && lastCheck.errors.length;
    save.disabled = !dirty() || !!broken;
    revert.disabled = !dirty();
  }
  function preview() {
    var mine = ++seq;
    call("POST", previewUrl, {id: id, body: body.value}).then(function (res) {
      if (mine !== seq) return;  // a newer keystroke's answer is on its way
      var p = res.json;
      lastCheck = p;
      var out = $("preview");
      out.textContent = p.text || "(nothing to show)";
      out.classList.toggle("empty", !p.text);
      $("characters").textContent = p.characters;
      if ($("segments")) {
        $("segments").textContent = p.segments;
        $("encoding").textContent = p.encoding;
        $("encoding").className = "chip " + p.encoding;
      }
      showProblems(p.errors, p.warnings);
      refreshButtons();
    });
  }
  function schedule() { clearTimeout(timer); timer = setTimeout(preview, 150); refreshButtons(); }
  function fmt(at) { return at ? at.replace("T", " ").replace("Z", " UTC") : ""; }
  function loadVersions() {
    return call("GET", api + "/versions").then(function (res) {
      var tbody = document.querySelector("#versions tbody");
      tbody.textContent = "";
      res.json.forEach(function (v, i) {
        var tr = document.createElement("tr");
        if (i === 0) tr.className = "current";
        [String(v.version), v.author, fmt(v.at)].forEach(function (t) {
          var td = document.createElement("td");
          td.textContent = t;
          tr.appendChild(td);
        });
        var text = document.createElement("td");
        text.className = "body";
        text.textContent = v.body;
        tr.appendChild(text);
        var act = document.createElement("td");
        if (i === 0) {
          act.textContent = "in force";
          act.className = "muted small";
        } else {
          var b = document.createElement("button");
          b.type = "button";
          b.textContent = "Restore";
          b.setAttribute("aria-label", "Restore version " + v.version);
          b.addEventListener("click", function () { restore(v.version); });
          act.appendChild(b);
        }
        tr.appendChild(act);
        tbody.appendChild(tr);
      });
    });
  }
  function current() {
    return call("GET", api).then(function (res) {
      saved = res.json.body;
      body.value = saved;
      $("version").textContent = res.json.version;
      $("source").textContent = res.json.source;
      preview();
      return loadVersions();
    });
  }
  function restore(version) {
    if (dirty() && !window.confirm("Discard your unsaved changes and restore version " + version + "?")) return;
    status.textContent = "Restoring…";
    call("POST", api + "/restore", {version: version}).then(function (res) {
      if (res.status !== 200) { status.textContent = "Not restored: " + (res.json.errors || [res.json.reason]).join("; "); return; }
      status.textContent = "Restored version " + version + " as version " + res.json.version + ".";
      current();
    });
  }
  save.addEventListener("click", function () {
    save.disabled = true;
    status.textContent = "Saving…";
    call("PUT", api, {body: body.value}).then(function (res) {
      if (res.status === 422) {
        showProblems(res.json.errors, res.json.warnings || []);
        status.textContent = "Not saved.";
        refreshButtons();
        return;
      }
      if (res.status !== 200) { status.textContent = "Not saved: " + (res.json.reason || res.status); refreshButtons(); return; }
      status.textContent = "Saved as version " + res.json.version + ". In use within seconds.";
      current();
    });
  });
  revert.addEventListener("click", function () { body.value = saved; schedule(); status.textContent = ""; });
  body.addEventListener("input", schedule);
  body.addEventListener("keydown", function (e) {
    if ((e.ctrlKey || e.metaKey) && e.key === "s") { e.preventDefault(); if (!save.disabled) save.click(); }
  });
  window.addEventListener("beforeunload", function (e) { if (dirty()) { e.preventDefault(); e.returnValue = ""; } });
  preview();
  loadVersions();
  refreshButtons();
})();
