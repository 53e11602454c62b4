// Sessions that end cleanly. A page's live stream ends with an `ended` event when the session it
// was opened with no longer holds (expired, signed out, revoked; app/http/stream_end.py), and a
// stream the server refuses to reopen fails for good. Either way, ask /ui/session what to do:
// - the cookie still holds (it was renewed meanwhile): reconnect the stream, which resyncs;
// - a person's session ended: go to the login page, which comes back here afterwards;
// - a wall link ended (revoked, expired): say so on the whole screen and stop reconnecting,
//   since a TV has nobody to log in.
// Never left on "Reconnecting…" with old numbers.
(function () {
  var ended = false;
  var checking = false;

  function here() { return location.pathname + location.search; }

  function sources() {
    // The htmx sse extension keeps each stream on its element (htmx's internal data).
    return Array.prototype.map.call(document.querySelectorAll("[sse-connect]"), function (element) {
      var data = element["htmx-internal-data"];
      return { element: element, source: data && data.sseEventSource };
    });
  }

  function closeAll() {
    sources().forEach(function (s) { if (s.source) s.source.close(); });
  }

  function reconnect() {
    // A fresh copy of each stream element: htmx connects it like a new page would, and the
    // stream's greeting makes the page resync what it shows.
    sources().forEach(function (s) {
      if (s.source) s.source.close();
      var fresh = s.element.cloneNode(true);
      s.element.replaceWith(fresh);
      htmx.process(fresh);
    });
  }

  function toLogin() {
    ended = true;
    location.assign("/login?" + new URLSearchParams({ next: here() }).toString());
  }

  function showEnded(reason) {
    ended = true;
    closeAll();
    var box = document.getElementById("session-ended");
    if (!box) return;
    box.querySelector(".session-ended-message").textContent = box.dataset[reason] || box.dataset.invalid;
    box.hidden = false;
    var conn = document.getElementById("conn");
    if (conn) {
      conn.classList.remove("live", "connecting");
      conn.classList.add("lost");
      conn.textContent = "Ended";
    }
  }

  function check(whenValid) {
    if (ended || checking) return;
    checking = true;
    fetch("/ui/session", { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.ok) { if (whenValid) whenValid(); return null; }
        if (response.status !== 401) return null; // the server is in trouble: keep reconnecting
        return response.json().then(function (body) {
          var details = (body && body.details) || {};
          if (details.kind === "kiosk") showEnded(details.reason);
          else toLogin();
        });
      })
      .catch(function () { /* unreachable (a restart): the stream keeps reconnecting by itself */ })
      .then(function () { checking = false; });
  }

  // Every stream the sse extension opens goes through htmx.createEventSource (deferred scripts
  // run in order, so the extension has set it, and htmx opens streams only after this ran).
  if (window.htmx && htmx.createEventSource && !htmx.createEventSource.endsSessions) {
    var create = htmx.createEventSource;
    var wrapped = function (url) {
      var source = create(url);
      if (ended) { source.close(); return source; }
      source.addEventListener("ended", function () {
        source.close(); // before the browser reconnects by itself
        check(reconnect);
      });
      return source;
    };
    wrapped.endsSessions = true;
    htmx.createEventSource = wrapped;
  }

  // A stream the server refused to (re)open (401, 403): the browser gives it up.
  document.addEventListener("htmx:sseError", function (event) {
    var source = event.detail && event.detail.source;
    if (source && source.readyState === EventSource.CLOSED) check(null);
  });
})();
