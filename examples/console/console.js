// Live updates over Server-Sent Events: the server sends rendered, escaped HTML fragments and
// this swaps them in. Everything works without it, by reloading.
(function () {
  "use strict";
  var editing = function (el) {
    var a = document.activeElement;
    return a && el.contains(a) && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName);
  };
  // Replaces a fragment, keeping keyboard focus on the element with the same id; a form being
  // filled in is left alone until focus leaves it, so typing is never lost.
  var swap = function (el, html) {
    if (!el) return;
    if (editing(el)) { el.pendingHtml = html; return; }
    var a = document.activeElement;
    var keep = a && a !== document.body && el.contains(a) ? a.id : null;
    el.innerHTML = html;
    el.pendingHtml = null;
    if (keep) { var again = document.getElementById(keep); if (again) again.focus(); }
  };
  document.addEventListener("focusout", function () {
    setTimeout(function () {
      document.querySelectorAll("[data-swappable]").forEach(function (el) {
        if (el.pendingHtml && !editing(el)) swap(el, el.pendingHtml);
      });
    }, 0);
  });
  var list = document.querySelector("[data-live-list]");
  if (list) {
    new EventSource(list.getAttribute("data-live-list")).addEventListener("list", function (e) {
      swap(list, e.data);
    });
  }
  var pane = document.querySelector("[data-live-conversation]");
  if (pane) {
    var source = new EventSource(pane.getAttribute("data-live-conversation"));
    var transcript = document.getElementById("transcript");
    source.addEventListener("entry", function (e) {
      var holder = document.createElement("ol");
      holder.innerHTML = e.data;
      var entry = holder.firstElementChild;
      if (entry && !document.getElementById(entry.id)) transcript.appendChild(entry);
    });
    source.addEventListener("head", function (e) { swap(document.getElementById("pane-head"), e.data); });
    source.addEventListener("actions", function (e) { swap(document.getElementById("actions"), e.data); });
  }
})();
