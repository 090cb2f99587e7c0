/* Shared page behaviour: CSRF-aware fetch, toasts, the notification bell, confirmations.
   Plain JS, no build step; pages work without it (forms post normally). */
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  /* POST a form body; resolves to {status, data} with the JSON answer (errors included). */
  function post(url, body) {
    return fetch(url, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRFToken": csrfToken() },
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        return { status: response.status, data: data };
      });
    });
  }

  function getFragment(url) {
    return fetch(url, { credentials: "same-origin", headers: { "X-Fragment": "1" } }).then(function (r) {
      if (!r.ok) { throw new Error(r.status === 404 ? "That conversation is not available to you." : "Could not load (" + r.status + ")."); }
      return r.text();
    });
  }

  var MAX_TOASTS = 3;

  /* A toast: text plus optional buttons [{label, run}]. */
  function toast(text, options) {
    options = options || {};
    var box = document.querySelector("[data-toasts]");
    if (!box) { return; }
    var el = document.createElement("div");
    el.className = "toast" + (options.kind ? " " + options.kind : "");
    el.setAttribute("role", options.kind === "error" ? "alert" : "status");
    var span = document.createElement("span");
    span.textContent = text;
    el.appendChild(span);
    (options.actions || []).forEach(function (action) {
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = action.label;
      button.addEventListener("click", function () { el.remove(); action.run(); });
      el.appendChild(button);
    });
    if (options.sticky) { el.dataset.sticky = ""; }
    box.appendChild(el);
    // An agent triaging by keyboard makes a toast a second: keep the newest few, not a column
    // over the queue (an older one with an Undo goes too; the action can be redone). A sticky
    // toast (a conflict: the action was not applied) stays until it is answered.
    var passing = box.querySelectorAll(".toast:not([data-sticky])");
    for (var i = 0; i < passing.length - MAX_TOASTS; i++) { passing[i].remove(); }
    var ms = options.sticky ? 0 : (options.actions && options.actions.length ? 8000 : 4000);
    if (ms) { setTimeout(function () { el.remove(); }, ms); }
    return el;
  }

  function setNotificationCount(n) {
    document.querySelectorAll("[data-notification-count]").forEach(function (el) {
      el.textContent = n;
      el.classList.toggle("hidden", !n);
    });
  }

  function initBell() {
    var bell = document.querySelector("[data-bell]");
    var pop = document.querySelector("[data-bell-popover]");
    if (!bell || !pop) { return; }
    bell.addEventListener("click", function (event) {
      event.preventDefault();
      if (!pop.classList.contains("hidden")) { pop.classList.add("hidden"); return; }
      getFragment(bell.href).then(function (html) {
        pop.innerHTML = html;
        pop.classList.remove("hidden");
      }).catch(function (err) { toast(err.message, { kind: "error" }); });
    });
    pop.addEventListener("submit", function (event) {
      var form = event.target.closest("[data-mark-read]");
      if (!form) { return; }
      event.preventDefault();
      post(form.action, new FormData(form)).then(function () {
        setNotificationCount(0);
        pop.querySelectorAll(".notification.unread").forEach(function (li) { li.classList.remove("unread"); });
      });
    });
    document.addEventListener("click", function (event) {
      if (!pop.contains(event.target) && !bell.contains(event.target)) { pop.classList.add("hidden"); }
    });
  }

  /* Forms with data-confirm-submit ask first (admin deletes). */
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset && form.dataset.confirmSubmit && !window.confirm(form.dataset.confirmSubmit)) {
      event.preventDefault();
    }
  });

  /* The availability control in the top bar: changing it saves at once. The inbox's
     "you are offline" note (data-availability-note) goes online through it, and goes away
     once its person is online. */
  function initAvailability() {
    var form = document.querySelector("[data-availability]");
    if (!form) { return; }
    var select = form.querySelector("select");
    var dot = form.querySelector("[data-availability-dot]");
    var note = document.querySelector("[data-availability-note]");
    form.querySelector("[data-availability-submit]").classList.add("hidden");
    select.addEventListener("change", function () {
      post(form.action, new FormData(form)).then(function (res) {
        if (res.status >= 400) {
          toast((res.data.error && res.data.error.message) || "Could not change your availability.", { kind: "error" });
          return;
        }
        dot.className = "avail-dot avail-" + res.data.availability;
        if (note) { note.hidden = res.data.availability === "online"; }
        toast(res.data.message);
      });
    });
    if (note) {
      note.addEventListener("submit", function (event) {
        event.preventDefault();
        select.value = "online";
        select.dispatchEvent(new Event("change"));
      });
    }
  }

  window.inboxApp = { post: post, getFragment: getFragment, toast: toast, setNotificationCount: setNotificationCount };
  document.addEventListener("DOMContentLoaded", initBell);
  document.addEventListener("DOMContentLoaded", initAvailability);
})();
