/* Admin › Import: each import still waiting or running (data-poll) is fetched again every
   second and its row swapped for the server's, until it is done or failed. The rows are
   rendered (and escaped) by the server; this only replaces them. */
(function () {
  "use strict";
  var INTERVAL_MS = 1000;

  function refresh(row) {
    fetch(row.dataset.poll, { credentials: "same-origin", headers: { "X-Fragment": "1" } })
      .then(function (response) {
        if (!response.ok) { throw new Error(String(response.status)); }
        return response.text();
      })
      .then(function (html) {
        var holder = document.createElement("ul");
        holder.innerHTML = html.trim();
        var fresh = holder.firstElementChild;
        row.replaceWith(fresh);
        if (fresh.dataset.poll) { schedule(fresh); }
      })
      .catch(function () { schedule(row, INTERVAL_MS * 5); }); /* the server restarting: keep trying */
  }

  function schedule(row, delay) {
    window.setTimeout(function () { refresh(row); }, delay || INTERVAL_MS);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-poll]").forEach(function (row) { schedule(row); });
  });
})();
