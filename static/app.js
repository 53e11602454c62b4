// Small helpers for the live pages; everything else is htmx attributes in the templates.
(function () {
  // The connection indicator: every page with a live stream shows whether it is connected.
  function show(state) {
    var el = document.getElementById("conn");
    if (!el) return;
    el.classList.remove("live", "lost", "connecting");
    el.classList.add(state);
    el.textContent = state === "live" ? el.dataset.liveLabel : el.dataset.lostLabel;
  }
  document.addEventListener("htmx:sseOpen", function () { show("live"); });
  document.addEventListener("htmx:sseError", function () { show("lost"); });
  document.addEventListener("htmx:sseClose", function () { show("lost"); });

  // A form marked data-reset-after-success is cleared once its command was accepted (2xx); on
  // an error it keeps what was typed. (An event listener, not hx-on: pages run without eval.)
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.target && event.target.closest && event.target.closest("form[data-reset-after-success]");
    var xhr = event.detail && event.detail.xhr;
    if (form && xhr && xhr.status >= 200 && xhr.status < 300) form.reset();
  });

  // A live row or tile for something not on the page yet: add it to its container
  // (data-home) instead of dropping it, at the end, or on top with data-home-first (lists
  // newest first). Deletions carry no data-home and are dropped.
  document.addEventListener("htmx:oobErrorNoTarget", function (event) {
    var element = event.detail.content;
    var home = element && element.dataset && element.dataset.home && document.querySelector(element.dataset.home);
    if (!home) return;
    element.removeAttribute("hx-swap-oob");
    home.querySelectorAll("[data-placeholder]").forEach(function (placeholder) { placeholder.remove(); });
    if ("homeFirst" in element.dataset) home.insertBefore(element, home.firstChild);
    else home.appendChild(element);
    htmx.process(element);
  });

  // Countdowns to a reservation's expiry (<time class="countdown" datetime=... data-now=...>),
  // counted against the server's clock: data-now is the server's time when the row was made.
  function remaining(ms) {
    var s = Math.ceil(ms / 1000);
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d > 0) return "in " + d + " d " + h + " h";
    if (h > 0) return "in " + h + " h " + (m < 10 ? "0" : "") + m + " min";
    if (m > 0) return "in " + m + ":" + (s % 60 < 10 ? "0" : "") + (s % 60);
    return "in " + s + " s";
  }
  function tick() {
    document.querySelectorAll("time.countdown").forEach(function (el) {
      if (!("offset" in el.dataset)) el.dataset.offset = String((Date.parse(el.dataset.now) - Date.now()) || 0);
      var left = Date.parse(el.getAttribute("datetime")) - (Date.now() + Number(el.dataset.offset));
      var text = left > 0 ? remaining(left) : "expiring…";
      if (el.textContent !== text) el.textContent = text;
      el.classList.toggle("soon", left > 0 && left < 60000);
      el.classList.toggle("due", left <= 0);
    });
  }
  document.addEventListener("DOMContentLoaded", tick);
  document.addEventListener("htmx:load", tick);
  setInterval(tick, 1000);

  // A live update replaces a whole row; if the person was using the row's stock form, keep it
  // open with what they typed.
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var old = event.detail.target;
    var incoming = event.detail.fragment;
    if (!old || !old.querySelector || !incoming || !incoming.querySelector) return;
    var wasOpen = Array.prototype.map.call(old.querySelectorAll("details"), function (d) { return d.open; });
    if (wasOpen.indexOf(true) < 0) return;
    incoming.querySelectorAll("details").forEach(function (details, n) { details.open = !!wasOpen[n]; });
    old.querySelectorAll("input[id], select[id]").forEach(function (field) {
      var twin = incoming.querySelector("#" + CSS.escape(field.id));
      if (twin) twin.value = field.value;
    });
  });
})();
