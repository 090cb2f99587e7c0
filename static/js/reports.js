// SLA report page: sortable tables, breakdown tabs, custom-date fields, and the viewer's
// time zone offered for the next query. Works without it (plain GET form, all tables shown).
(function () {
  "use strict";

  function cellValue(row, index) {
    const cell = row.cells[index];
    if (!cell) return "";
    const raw = cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent.trim();
    const number = parseFloat(raw.replace(/[%,]/g, ""));
    return isNaN(number) || !/^-?[\d.,]+%?$/.test(raw) ? raw.toLowerCase() : number;
  }

  function makeSortable(table) {
    const headers = table.tHead ? Array.from(table.tHead.rows[0].cells) : [];
    headers.forEach(function (th, index) {
      th.dataset.sortDir = "none";
      th.tabIndex = 0;
      th.setAttribute("aria-sort", "none");
      function sort() {
        const dir = th.dataset.sortDir === "asc" ? "desc" : "asc";
        headers.forEach(function (h) { h.dataset.sortDir = "none"; h.setAttribute("aria-sort", "none"); });
        th.dataset.sortDir = dir;
        th.setAttribute("aria-sort", dir === "asc" ? "ascending" : "descending");
        const body = table.tBodies[0];
        const rows = Array.from(body.rows).filter(function (r) { return r.cells.length > 1; });
        rows.sort(function (a, b) {
          const x = cellValue(a, index), y = cellValue(b, index);
          const order = x < y ? -1 : x > y ? 1 : 0;
          return dir === "asc" ? order : -order;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); } });
    });
  }

  function setupTabs(section) {
    const tabs = section.querySelectorAll("[data-tab]");
    const tables = section.querySelectorAll("[data-breakdown]");
    function show(name) {
      tabs.forEach(function (t) {
        const on = t.dataset.tab === name;
        t.classList.toggle("active", on);
        t.setAttribute("aria-selected", on ? "true" : "false");
      });
      tables.forEach(function (t) { t.classList.toggle("js-hidden", t.dataset.breakdown !== name); });
    }
    tabs.forEach(function (t) { t.addEventListener("click", function () { show(t.dataset.tab); }); });
    if (tabs.length) show(tabs[0].dataset.tab);
  }

  function setupFilters(form) {
    function sync() {
      const checked = form.querySelector("[data-preset]:checked");
      form.classList.toggle("js-custom-hidden", !!checked && checked.value !== "custom");
    }
    form.querySelectorAll("[data-preset]").forEach(function (radio) {
      radio.addEventListener("change", function () {
        sync();
        if (radio.value !== "custom") form.requestSubmit();
      });
    });
    sync();
    // Offer the browser's zone when the URL did not choose one (the server defaults to UTC).
    const tz = form.querySelector("[data-tz]");
    if (tz && !new URLSearchParams(window.location.search).has("tz")) {
      try { tz.value = Intl.DateTimeFormat().resolvedOptions().timeZone || tz.value; } catch (e) { /* keep UTC */ }
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("table[data-sortable]").forEach(makeSortable);
    document.querySelectorAll("[data-breakdowns]").forEach(setupTabs);
    document.querySelectorAll("[data-report-filters]").forEach(setupFilters);
  });
})();
