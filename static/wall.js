// The stock wall (templates/wall.html): one screen of tiles at a time, most urgent first.
// - Turns to the next screen every data-rotate seconds (wrapping to the first), carrying the
//   wall's options (data-tiles-url); the answer also brings the header's counts and page.
// - A live tile that is on screen is replaced in place by htmx (out of band). One that is not
//   and now needs attention (out or low) is put at its place in the wall's order, pushing the
//   least urgent tile off a full screen: what needs attention shows at once, whatever screen is
//   up. A tile that needs nothing waits for its screen to come round.
// - After every (re)connection the stream says "resync": the current screen reloads, so nothing
//   missed while away stays missed.
// - The latest stock alert at the wall's stores is one line above the tiles, replaced in place
//   (out of band) by the stream and with every screen.
(function () {
  var wall = document.getElementById("wall");
  var tiles = document.getElementById("tiles");
  if (!wall || !tiles) return;
  var timer = null;

  function number(value, fallback) {
    var n = parseInt(value, 10);
    return isNaN(n) ? fallback : n;
  }

  function currentPage() {
    var status = document.getElementById("wall-status");
    return status ? number(status.dataset.page, 1) : 1;
  }

  function pageCount() {
    var status = document.getElementById("wall-status");
    return status ? number(status.dataset.pages, 1) : 1;
  }

  // When the wall last heard from the server, in the viewer's time zone.
  function stamp() {
    var el = document.getElementById("wall-updated");
    if (!el) return;
    var now = new Date();
    el.dataset.datetime = now.toISOString();
    el.textContent = now.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(function () {
      var page = currentPage();
      load(page >= pageCount() ? 1 : page + 1);
    }, number(wall.dataset.rotate, 15) * 1000);
  }

  // fetch, not hx-get: an error answer (the server restarting) keeps the screen as it is
  // instead of swapping a message over the tiles; the next turn tries again.
  function load(page) {
    clearTimeout(timer);
    fetch(wall.dataset.tilesUrl + "&page=" + page, { credentials: "same-origin", headers: { "HX-Request": "true" } })
      .then(function (response) {
        if (!response.ok) return null;
        return response.text();
      })
      .then(function (html) {
        if (html !== null) {
          htmx.swap(tiles, html, { swapStyle: "innerHTML" });
          stamp();
        }
      })
      .catch(function () { /* offline: keep the screen, try again on the next turn */ })
      .then(schedule);
  }

  // A tile's place in the wall's order (app/domain/wall.py:tile_key), smallest first.
  function key(tile) {
    var d = tile.dataset;
    return [number(d.group, 2), number(d.gap, 0), d.name || "", d.sku || "", d.location || ""];
  }

  function compare(a, b) {
    for (var i = 0; i < a.length; i++) {
      if (a[i] < b[i]) return -1;
      if (a[i] > b[i]) return 1;
    }
    return 0;
  }

  function place(tile) {
    var mine = key(tile);
    var shown = tiles.querySelectorAll("article.tile");
    var before = null;
    for (var i = 0; i < shown.length; i++) {
      if (compare(mine, key(shown[i])) < 0) { before = shown[i]; break; }
    }
    tile.removeAttribute("hx-swap-oob");
    tiles.querySelectorAll("[data-placeholder]").forEach(function (p) { p.remove(); });
    tiles.insertBefore(tile, before);
    var all = tiles.querySelectorAll("article.tile");
    if (all.length > number(wall.dataset.capacity, all.length)) {
      // The least urgent tile leaves; the newcomer stays even when it is the least urgent.
      var last = all[all.length - 1] === tile ? all[all.length - 2] : all[all.length - 1];
      last.remove();
    }
    htmx.process(tile);
  }

  document.addEventListener("htmx:oobErrorNoTarget", function (event) {
    var tile = event.detail && event.detail.content;
    if (!tile || !tile.classList || !tile.classList.contains("tile")) return;
    if (number(tile.dataset.group, 2) < 2) place(tile);
  });

  // The alert line's time: hours and minutes in the viewer's zone, short enough for one line
  // (app.js, which runs first, writes the long local form; the UTC text stays its title).
  function shortTime(el) {
    var at = Date.parse(el.getAttribute("datetime"));
    if (isNaN(at)) return;
    if (!el.title) el.title = el.textContent.trim();
    el.textContent = new Date(at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }
  document.addEventListener("htmx:load", function (event) {
    var root = event.target;
    if (!root || !root.querySelectorAll) return;
    var line = root.id === "wall-alert" ? root : root.querySelector("#wall-alert");
    if (line) line.querySelectorAll("time[datetime]").forEach(shortTime);
  });

  var updates = document.getElementById("wall-updates");
  if (updates) updates.addEventListener("htmx:sseMessage", stamp);
  var resync = document.getElementById("wall-resync");
  if (resync) resync.addEventListener("htmx:sseMessage", function () { load(currentPage()); });

  stamp();
  schedule();
})();
