/* Admin › Import: each import still waiting or running (data-poll) is fetched again every
   second and its row swapped for the server's, until it is done or failed. The rows are
   rendered (and escaped) by the server; this only replaces them. A signed-out session (the
   login page comes back instead of a row) or a refusal stops the polling; the server being
   away (a restart) only slows it. */
(function () {
  "use strict";
  var INTERVAL_MS = 1000;

  function refresh(row) {
    fetch(row.dataset.poll, { credentials: "same-origin", headers: { "X-Fragment": "1" } })
      .then(function (response) {
        if (response.status >= 400 && response.status < 500) { return null; }
        if (!response.ok) { throw new Error(String(response.status)); }
        return response.redirected ? null : response.text();
      })
      .then(function (html) {
        if (html === null) { return; }
        var holder = document.createElement("ul");
        holder.innerHTML = html.trim();
        var fresh = holder.firstElementChild;
        if (!fresh || !fresh.matches("li[data-import]")) { return; }
        row.replaceWith(fresh);
        if (fresh.dataset.poll) { schedule(fresh); }
      })
      .catch(function () { schedule(row, INTERVAL_MS * 5); });
  }

  function schedule(row, delay) {
    window.setTimeout(function () { refresh(row); }, delay || INTERVAL_MS);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-poll]").forEach(function (row) { schedule(row); });
  });
})();
