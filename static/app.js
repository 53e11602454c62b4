// Small helpers for the live pages; everything else is htmx attributes in the templates.
// (Event listeners only, no hx-on and no inline script: the pages run under a strict
// Content-Security-Policy without eval.)
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

  // Everything new on the page, the page itself included (htmx:load fires for the body at start
  // and for every swapped-in element, live ones too): run fn over it and its descendants.
  function each(root, selector, fn) {
    if (!root || !root.querySelectorAll) return;
    if (root.matches && root.matches(selector)) fn(root);
    root.querySelectorAll(selector).forEach(fn);
  }

  // --- A form's answer, next to the form ------------------------------------------------------
  // Each command form names its own result slot in hx-target (#<form_id>-result).
  // The form that sent a command (a POST); a badge polling for its state (a GET) is no form's.
  function formOf(event) {
    var config = event.detail && event.detail.requestConfig;
    if (!config || String(config.verb).toLowerCase() !== "post") return null;
    var elt = event.detail.elt || event.target;
    return elt && elt.closest ? elt.closest("form") : null;
  }
  function slotOf(form) {
    var target = form && form.getAttribute("hx-target");
    return target && target.charAt(0) === "#" ? document.getElementById(target.slice(1)) : null;
  }
  function say(form, text) {
    var slot = slotOf(form);
    if (!slot) return;
    var badge = document.createElement("p");
    badge.className = "badge unreachable";
    badge.setAttribute("role", "alert");
    var state = document.createElement("strong");
    state.className = "state error";
    state.textContent = text;
    badge.appendChild(state);
    slot.replaceChildren(badge);
  }

  // The command service did not answer (down, or a proxy in front of it said so): nothing was
  // sent, and the person is told so next to the form instead of seeing nothing happen.
  var UNREACHABLE = "The command service cannot be reached; nothing was sent. Try again.";
  function retryText(value) {
    if (!value) return "";
    if (/^\d+$/.test(value)) return " (in " + value + " s)";
    var at = Date.parse(value);
    return isNaN(at) ? "" : " (after " + new Date(at).toLocaleTimeString() + ")";
  }
  document.addEventListener("htmx:sendError", function (event) {
    var form = formOf(event);
    if (form) say(form, UNREACHABLE);
  });
  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail.xhr;
    if (!xhr || [502, 503, 504].indexOf(xhr.status) < 0) return;
    // The command service's own 503 is an answer (a badge that says why and when to retry).
    if (/class="badge/.test(xhr.responseText || "")) return;
    var form = formOf(event);
    if (!form) return;
    event.detail.shouldSwap = false;
    var retry = retryText(xhr.getResponseHeader("Retry-After"));
    say(form, UNREACHABLE.replace(/\.$/, "") + retry + ".");
  });

  // --- Keep what was typed until the outcome is known -----------------------------------------
  // A form marked data-reset-after-success is cleared once its command was applied; when it is
  // rejected or refused it keeps what was typed, to fix and send again. The 202 names the
  // command (its badge, #cmd-<id>); the form waits for that badge to say applied or rejected.
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = formOf(event);
    var xhr = event.detail && event.detail.xhr;
    if (!form || !xhr) return;
    keepFocus(event, form);
    if (xhr.status !== 202 || !form.hasAttribute("data-reset-after-success")) return;
    var found = /id="cmd-([0-9a-f-]{36})"/.exec(xhr.responseText || "");
    if (!found) return;
    form.dataset.awaiting = found[1];
    settle(document.getElementById("cmd-" + found[1]));
  });
  function settle(state) {
    if (!state || !state.id) return;
    var commandId = state.id.slice(4);
    var form = document.querySelector('form[data-awaiting="' + commandId + '"]');
    if (!form) return;
    if (state.classList.contains("applied")) {
      delete form.dataset.awaiting;
      form.reset();
      restoreSticky(form);
    } else if (!state.classList.contains("pending")) {
      delete form.dataset.awaiting;
    }
  }
  document.addEventListener("htmx:load", function (event) {
    each(event.target, "strong.state[id^='cmd-']", settle);
  });

  // A live update can re-render a row while its form's command is on its way; htmx would then
  // put the answer into the row's old, detached copy (and its events no longer reach the page).
  // The answer goes to the form's new copy instead (same ids), or to the list's result area
  // when the row has left the list.
  document.addEventListener("htmx:beforeSend", function (event) {
    var elt = event.detail.elt, xhr = event.detail.xhr, form = formOf(event), slot = slotOf(form);
    if (!elt || !xhr || !form || !form.id || !slot) return;
    var formId = form.id, slotId = slot.id, key = focusKey(elt);
    var spare = form.closest("[data-results-home]");
    var homeSelector = spare && spare.dataset.resultsHome;
    xhr.addEventListener("loadend", function () {
      if (elt.isConnected) return; // htmx answered it in place
      var now = document.getElementById(formId);
      var target = document.getElementById(slotId) || (homeSelector && document.querySelector(homeSelector));
      if (!target) return;
      if (xhr.status === 0 || ([502, 503, 504].indexOf(xhr.status) >= 0 && !/class="badge/.test(xhr.responseText || ""))) {
        say(now, UNREACHABLE);
        return;
      }
      var swap = target.id === slotId ? "innerHTML" : "beforeend";
      htmx.swap(target, xhr.responseText, { swapStyle: swap, swapDelay: 0, settleDelay: 0 });
      var found = xhr.status === 202 && /id="cmd-([0-9a-f-]{36})"/.exec(xhr.responseText || "");
      if (found && now && now.hasAttribute("data-reset-after-success")) {
        now.dataset.awaiting = found[1];
        settle(document.getElementById("cmd-" + found[1]));
      }
      if (now && key && (!document.activeElement || document.activeElement === document.body)) {
        var again = now.querySelector(key);
        if (again) again.focus({ preventScroll: true });
      }
    });
  });

  // --- The location choice is sticky ----------------------------------------------------------
  // A command's location (select[data-sticky]) comes back as the person last chose it: after a
  // live re-render of the row, after a form is cleared, and on the next page load. Only to a
  // location the form offers (a store-limited person's forms offer only theirs).
  var STICKY = "inventory.sticky.";
  function stored(name) {
    try { return window.localStorage.getItem(STICKY + name); } catch (e) { return null; }
  }
  function restoreSticky(root) {
    each(root, "select[data-sticky]", function (select) {
      var saved = stored(select.name);
      if (saved && Array.prototype.some.call(select.options, function (o) { return o.value === saved; })) {
        select.value = saved;
      }
    });
  }
  document.addEventListener("change", function (event) {
    var select = event.target;
    if (!select.matches || !select.matches("select[data-sticky]")) return;
    try { window.localStorage.setItem(STICKY + select.name, select.value); } catch (e) { return; }
    restoreSticky(document);
  });
  document.addEventListener("htmx:load", function (event) { restoreSticky(event.target); });

  // --- Times in the viewer's time zone --------------------------------------------------------
  // The server writes every time as <time datetime="RFC 3339">UTC text</time>; here it becomes
  // the viewer's local time with its zone's short name, the UTC text kept as the title.
  // (Countdowns are left to tick() below.)
  var LOCAL = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
  });
  function localTime(el) {
    if ("local" in el.dataset || el.classList.contains("countdown")) return;
    var at = Date.parse(el.getAttribute("datetime"));
    if (isNaN(at)) return;
    if (!el.title) el.title = el.textContent.trim();
    el.textContent = LOCAL.format(at);
    el.dataset.local = "";
  }
  document.addEventListener("htmx:load", function (event) { each(event.target, "time[datetime]", localTime); });

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
    // Placed here rather than swapped by htmx: no htmx:load, so its times are made local here.
    each(element, "time[datetime]", localTime);
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

  // --- Focus stays where the person works -----------------------------------------------------
  // A control is found again in a re-rendered row by its id, or by the command it posts.
  function focusKey(el) {
    if (!el || el === document.body) return null;
    if (el.id) return "#" + CSS.escape(el.id);
    var post = el.getAttribute("hx-post");
    if (post) return '[hx-post="' + post.replace(/["\\]/g, "\\$&") + '"]';
    return null;
  }
  // After a submit the focus stays on what was used (the button; its form if that is gone),
  // never thrown back to the top of the page.
  function keepFocus(event, form) {
    var elt = event.detail && event.detail.elt;
    if (!elt || (document.activeElement && document.activeElement !== document.body)) return;
    var target = elt.isConnected ? elt : form && form.isConnected && form.querySelector("button, select, input:not([type=hidden])");
    if (target) target.focus({ preventScroll: true });
  }

  // A live update replaces a whole row: if the person was using it, keep its forms open with
  // what they typed, the answer shown next to it, the form's wait for its outcome, and the focus.
  var refocus = null;
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var old = event.detail.target;
    var incoming = event.detail.fragment;
    if (!old || !old.querySelector || !incoming || !incoming.querySelector) return;
    var replacement = incoming.firstElementChild;
    var replaced = replacement && replacement.id && replacement.id === old.id;
    var active = document.activeElement;
    var focused = active && old.contains(active) ? focusKey(active) || "" : null;
    if (!replaced) {
      // The row leaves the page (closed, deleted, no longer matching): its answers go to the
      // list's own result area, and so does the focus.
      var spare = old.closest("[data-results-home]");
      var home = spare && document.querySelector(spare.dataset.resultsHome);
      if (!home) return;
      old.querySelectorAll(".form-result").forEach(function (slot) {
        Array.prototype.slice.call(slot.childNodes).forEach(function (child) { home.appendChild(child); });
      });
      if (focused !== null) refocus = { id: home.id, key: null };
      return;
    }
    old.querySelectorAll(".form-result").forEach(function (slot) {
      var twin = slot.id && incoming.querySelector("#" + CSS.escape(slot.id));
      if (twin && slot.childNodes.length) twin.replaceChildren.apply(twin, Array.prototype.slice.call(slot.childNodes));
    });
    old.querySelectorAll("form[id][data-awaiting]").forEach(function (form) {
      var twin = incoming.querySelector("#" + CSS.escape(form.id));
      if (twin) twin.dataset.awaiting = form.dataset.awaiting;
    });
    if (focused !== null) refocus = { id: old.id, key: focused };
    var wasOpen = Array.prototype.map.call(old.querySelectorAll("details"), function (d) { return d.open; });
    if (wasOpen.indexOf(true) < 0) return;
    incoming.querySelectorAll("details").forEach(function (details, n) { details.open = !!wasOpen[n]; });
    old.querySelectorAll("input[id], select[id]").forEach(function (field) {
      var twin = incoming.querySelector("#" + CSS.escape(field.id));
      if (twin) twin.value = field.value;
    });
  });
  document.addEventListener("htmx:oobAfterSwap", function () {
    if (!refocus) return;
    var box = document.getElementById(refocus.id);
    var target = box && ((refocus.key && box.querySelector(refocus.key)) || box.querySelector("a[href], button, input, select") || box);
    refocus = null;
    if (target && target.focus) target.focus({ preventScroll: true });
  });
})();
