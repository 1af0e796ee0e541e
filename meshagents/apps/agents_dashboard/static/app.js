// meshagents cockpit: swap panel fragments that arrive over server-sent events.
// No framework, no build, nothing from a CDN. Works without it: every action is a form.
(function () {
  "use strict";
  var held = {}; // panel -> html waiting while the operator has a confirmation open
  var live = false;

  function liveMark() {
    var el = document.getElementById("live-state");
    if (!el) return;
    el.textContent = live ? "page: live" : "page: reconnecting";
    el.className = "pill " + (live ? "ok" : "bad");
    el.setAttribute("data-live", live ? "1" : "0");
  }

  function swap(name, html) {
    var el = document.getElementById("panel-" + name);
    if (!el) return;
    // A confirmation (revoke) is open: keep the page still under the operator's finger.
    if (el.querySelector("details.confirm[open]")) { held[name] = html; return; }
    var open = [];
    el.querySelectorAll("details[open][data-keep], details.revoked-list[open]").forEach(function (d) {
      open.push(d.getAttribute("data-keep") || "revoked-list");
    });
    el.innerHTML = html;
    open.forEach(function (k) {
      var d = k === "revoked-list" ? el.querySelector("details.revoked-list")
        : el.querySelector('details[data-keep="' + (window.CSS && CSS.escape ? CSS.escape(k) : k) + '"]');
      if (d) d.open = true;
    });
    if (name === "status") liveMark();
  }

  document.addEventListener("toggle", function (ev) {
    var d = ev.target;
    if (!d || !d.classList || !d.classList.contains("confirm") || d.open) return;
    Object.keys(held).forEach(function (name) { var h = held[name]; delete held[name]; swap(name, h); });
  }, true);

  if (!window.EventSource) return;
  var es = new EventSource("/events");
  ["status", "mesh", "devices", "containers", "approvals", "audit"].forEach(function (name) {
    es.addEventListener(name, function (ev) { swap(name, ev.data); });
  });
  es.addEventListener("logout", function () { window.location.assign("/login"); });
  es.onopen = function () { live = true; liveMark(); };
  es.onerror = function () { live = false; liveMark(); };
})();
