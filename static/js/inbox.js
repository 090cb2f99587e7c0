/* The agent inbox page: open conversations without reloads, keyboard shortcuts, actions with
   toasts/undo/conflict handling, bulk actions, live updates (SSE) and presence heartbeats.
   Everything here enhances server-rendered HTML; without it the links and forms still work. */
(function () {
  "use strict";
  var app = window.inboxApp;
  var queue, rowsBox, detail, me;
  var cursorId = null;          // the row j/k highlights
  var lastPicked = null;        // for shift-click ranges
  var loadedMore = false;       // a refresh would drop extra pages: offer it instead
  var heartbeatTimer = null, lastTypingSent = 0;
  var refreshTimer = null;

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function rows() { return $all(".row", rowsBox); }
  function convo() { return $(".convo", detail); }
  function rowFor(id) { return $('.row[data-conversation="' + id + '"]', rowsBox); }

  /* --- Opening conversations ------------------------------------------------------------- */

  var TEXT_BOXES = ["[data-note-box]", "[data-reply-box]"];

  // What the agent is writing in the open conversation: a reload (a colleague's change, an
  // undo) replaces the pane, and must not take the text or the cursor with it.
  function draftsOf(c) {
    if (!c) { return null; }
    var active = document.activeElement;
    return {
      id: c.dataset.convo,
      boxes: TEXT_BOXES.map(function (sel) {
        var box = $(sel, c);
        return box && { sel: sel, value: box.value, focused: box === active,
                        start: box.selectionStart, end: box.selectionEnd };
      }).filter(Boolean)
    };
  }

  function restoreDrafts(drafts, c) {
    if (!drafts || !c || c.dataset.convo !== drafts.id) { return; }
    drafts.boxes.forEach(function (d) {
      var box = $(d.sel, c);
      if (!box) { return; }
      if (d.value) { box.value = d.value; }
      if (box.matches("[data-reply-box]")) { updateReplyCount(box); }
      if (d.focused) { box.focus(); box.setSelectionRange(d.start, d.end); }
    });
  }

  function openConversation(url, push) {
    var current = convo();
    if (current) { current.classList.add("loading"); }
    return app.getFragment(url).then(function (html) {
      leaveCurrent();
      var drafts = draftsOf(convo());
      detail.innerHTML = html;
      var c = convo();
      var id = c && c.dataset.convo;
      restoreDrafts(drafts, c);
      rows().forEach(function (r) { r.classList.toggle("selected", r.dataset.conversation === id); });
      var row = rowFor(id);
      if (row) {
        row.classList.remove("unread");
        var dot = $(".dot", row); if (dot) { dot.remove(); }
        setCursor(id, false);
      }
      if (push) { history.pushState({ conversation: url }, "", url); }
      startPresence();
      scrollThreadToEnd();
    }).catch(function (err) {
      if (current) { current.classList.remove("loading"); }
      app.toast(err.message, { kind: "error" });
    });
  }

  // The conversation left the agent's reach (routed to a team they are not in): reloading it
  // would answer 404, so the pane closes and says why, and the address goes back to the view.
  function closeConversation(text) {
    leaveCurrent();
    var c = convo();
    var row = c && rowFor(c.dataset.convo);
    if (row) { row.remove(); }
    var empty = document.createElement("div");
    empty.className = "empty detail-empty";
    empty.setAttribute("data-closed", "");
    var title = document.createElement("p");
    title.innerHTML = "<strong></strong>";
    title.firstChild.textContent = text;
    var hint = document.createElement("p");
    hint.className = "muted";
    hint.textContent = "It is no longer in your teams' queues. Press g for the next one.";
    empty.append(title, hint);
    detail.replaceChildren(empty);
    startPresence();  // stops the heartbeats of the closed conversation
    var params = new URLSearchParams(location.search);
    params.delete("view");
    var query = params.toString();
    history.replaceState(null, "", $("[data-filters]").getAttribute("action") + (query ? "?" + query : ""));
  }

  function scrollThreadToEnd() {
    var thread = $("[data-thread]", detail);
    if (thread) { thread.scrollTop = thread.scrollHeight; }
  }

  function reloadConversation() {
    var c = convo();
    if (c) { return openConversation(c.dataset.url + location.search, false); }
    return Promise.resolve();
  }

  /* --- Row cursor, selection, bulk ------------------------------------------------------- */

  function setCursor(id, scroll) {
    cursorId = id;
    rows().forEach(function (r) { r.classList.toggle("cursor", r.dataset.conversation === id); });
    var row = rowFor(id);
    if (row && scroll !== false) { row.scrollIntoView({ block: "nearest" }); }
  }

  function moveCursor(step) {
    var list = rows();
    if (!list.length) { return; }
    var index = list.findIndex(function (r) { return r.dataset.conversation === cursorId; });
    index = index < 0 ? (step > 0 ? 0 : list.length - 1) : Math.max(0, Math.min(list.length - 1, index + step));
    setCursor(list[index].dataset.conversation);
  }

  function picked() {
    return $all("[data-pick]:checked", rowsBox).map(function (box) { return box.value; });
  }

  function updateBulkbar() {
    var ids = picked();
    $("[data-bulkbar]").classList.toggle("hidden", ids.length === 0);
    $("[data-bulk-count]").textContent = ids.length;
    rows().forEach(function (r) { r.classList.toggle("picked", $("[data-pick]", r).checked); });
    var all = $("[data-pick-all]");
    var boxes = $all("[data-pick]", rowsBox);
    all.checked = boxes.length > 0 && ids.length === boxes.length;
    all.indeterminate = ids.length > 0 && ids.length < boxes.length;
  }

  function onPick(box, shift) {
    var boxes = $all("[data-pick]", rowsBox);
    if (shift && lastPicked) {
      var a = boxes.indexOf(lastPicked), b = boxes.indexOf(box);
      if (a >= 0 && b >= 0) {
        boxes.slice(Math.min(a, b), Math.max(a, b) + 1).forEach(function (x) { x.checked = box.checked; });
      }
    }
    lastPicked = box;
    updateBulkbar();
  }

  function clearPicks() {
    $all("[data-pick]", rowsBox).forEach(function (b) { b.checked = false; });
    updateBulkbar();
  }

  function confirmDialog(title, text, withInput) {
    var dialog = $("[data-confirm]");
    var input = $("[data-confirm-input]", dialog);
    $("[data-confirm-title]", dialog).textContent = title;
    $("[data-confirm-text]", dialog).textContent = text;
    input.value = "";
    input.classList.toggle("hidden", !withInput);
    dialog.classList.remove("hidden");
    (withInput ? input : $("[data-confirm-yes]", dialog)).focus();
    return new Promise(function (resolve) {
      function close(result) {
        dialog.classList.add("hidden");
        $("[data-confirm-yes]", dialog).onclick = null;
        $("[data-confirm-no]", dialog).onclick = null;
        input.onkeydown = null;
        resolve(result);
      }
      $("[data-confirm-yes]", dialog).onclick = function () { close(withInput ? (input.value.trim() || null) : true); };
      $("[data-confirm-no]", dialog).onclick = function () { close(null); };
      input.onkeydown = function (e) { if (e.key === "Enter") { close(input.value.trim() || null); } };
      dialog.onkeydown = function (e) { if (e.key === "Escape") { close(null); } };
    });
  }

  var BULK_WORDS = {
    claim: "Assign {n} conversations to you?", assign: "Assign {n} conversations to {v}?",
    status: "Set {n} conversations to {v}?", spam: "Mark {n} conversations as spam?",
    not_spam: "Mark {n} conversations as not spam?", tag: "Tag {n} conversations",
  };

  function runBulk(action, value, label) {
    var ids = picked();
    if (!ids.length) { return; }
    var n = ids.length;
    var text = (BULK_WORDS[action] || "Apply to {n} conversations?").replace("{n}", n).replace("{v}", label || value || "");
    var ask = action === "tag"
      ? confirmDialog(text, "Type the tag to add (it is created if new).", true)
      : confirmDialog("Bulk action", text, false);
    ask.then(function (answer) {
      if (!answer) { return; }
      var body = new FormData();
      body.append("ids", ids.join(","));
      body.append("action", action);
      body.append("value", action === "tag" ? answer : (value || ""));
      app.post(queue.dataset.bulkUrl, body).then(function (res) {
        if (res.status >= 400) { app.toast(errorText(res), { kind: "error" }); return; }
        app.toast(res.data.message);
        clearPicks();
        refreshList(true);
        refreshCounts();
        reloadConversation();
      });
    });
  }

  /* --- Actions on the open conversation ------------------------------------------------- */

  function errorText(res) {
    return (res.data && res.data.error && res.data.error.message) || ("Something went wrong (" + res.status + ").");
  }

  function submitAction(form, extra) {
    var sentFrom = convo() && convo().dataset.convo;
    var body = new FormData(form);
    Object.keys(extra || {}).forEach(function (k) { body.set(k, extra[k]); });
    return app.post(form.action, body).then(function (res) {
      // A version conflict (a colleague changed the conversation) can be overridden; other
      // 409s (a reply the channel cannot send) are plain errors.
      if (res.status === 409 && res.data && res.data.version !== undefined) {
        app.toast(errorText(res), {
          kind: "warn", sticky: true,
          actions: [
            { label: "Apply anyway", run: function () { submitAction(form, { version: res.data.version }); } },
            { label: "Reload", run: function () { reloadConversation(); } },
          ],
        });
        return;
      }
      if (res.status >= 400) { app.toast(errorText(res), { kind: "error" }); return; }
      var undo = res.data.undo;
      var actions = [];
      if (undo) {
        actions.push({ label: "Undo", run: function () { runUndo(form, undo); } });
      }
      if (res.data.visible === false) {
        app.toast(res.data.message + ": it has left your queues");
        // Only if the agent has not opened another conversation meanwhile.
        if (convo() && convo().dataset.convo === sentFrom) { closeConversation(res.data.message + "."); }
        refreshList(false);
        refreshCounts();
        return;
      }
      app.toast(res.data.message, { actions: actions });
      // A saved note or a queued reply empties its box (and its copy, if a colleague's change
      // re-rendered the pane while this was being sent).
      var box = $("[data-note-box], [data-reply-box]", form);
      if (box) {
        box.value = "";
        var c = convo();
        var copy = c && c.dataset.convo === sentFrom &&
          $(box.matches("[data-note-box]") ? "[data-note-box]" : "[data-reply-box]", c);
        if (copy) { copy.value = ""; }
      }
      reloadConversation();
      refreshList(false);
      refreshCounts();
    });
  }

  // The composer's counter: characters as the platform counts them, near enough (the server
  // checks exactly); it turns red past the limit.
  function updateReplyCount(box) {
    var count = $("[data-reply-count]", box.form);
    var length = Array.from(box.value).length;
    count.textContent = length;
    count.parentElement.classList.toggle("over-limit", length > Number(box.dataset.maxLength));
  }

  function runUndo(form, undo) {
    var c = convo();
    if (!c) { return; }
    var url = c.dataset.url + "/" + undo.action;
    var body = new FormData();
    body.append("csrf_token", $('input[name="csrf_token"]', form).value);
    Object.keys(undo).forEach(function (k) {
      if (k === "action" || undo[k] === null) { return; }
      body.append(k, undo[k]);
    });
    app.post(url, body).then(function (res) {
      if (res.status >= 400) { app.toast(errorText(res), { kind: "error" }); return; }
      app.toast("Undone");
      reloadConversation();
      refreshList(false);
      refreshCounts();
    });
  }

  function insertAtCursor(box, text) {
    var start = box.selectionStart || 0, end = box.selectionEnd || 0;
    box.value = box.value.slice(0, start) + text + box.value.slice(end);
    box.selectionStart = box.selectionEnd = start + text.length;
    box.focus();
    box.dispatchEvent(new Event("input", { bubbles: true }));
  }

  // The picker sits in the reply composer, so it fills that reply (never the note below it).
  function insertCanned(select) {
    var url = select.value;
    select.value = "";
    if (!url) { return; }
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        var target = $("[data-reply-box]", select.form);
        if (target) { insertAtCursor(target, data.text); app.toast("Canned response inserted"); }
      })
      .catch(function () { app.toast("Could not load that canned response.", { kind: "error" }); });
  }

  /* --- Presence --------------------------------------------------------------------------- */

  function sendHeartbeat(typing) {
    var c = convo();
    if (!c) { return; }
    var body = new FormData();
    body.append("typing", typing ? "1" : "0");
    app.post(c.dataset.presenceUrl, body).then(function (res) {
      if (res.status === 200 && convo() === c) { renderViewers(res.data.viewers || []); }
    });
  }

  function renderViewers(viewers) {
    var box = $("[data-presence]", detail);
    if (!box) { return; }
    $all(".viewer", box).forEach(function (el) { el.remove(); });
    var text = $("[data-presence-text]", box);
    viewers.forEach(function (v) {
      var span = document.createElement("span");
      span.className = "avatar small viewer" + (v.typing ? " typing" : "");
      span.title = v.name + (v.typing ? " is typing a note" : " is viewing");
      span.textContent = v.initials;
      box.insertBefore(span, text);
    });
    var typing = viewers.filter(function (v) { return v.typing; }).map(function (v) { return v.name; });
    var names = viewers.map(function (v) { return v.name; });
    text.textContent = typing.length ? typing.join(", ") + (typing.length === 1 ? " is" : " are") + " typing…"
      : names.length ? names.join(", ") + (names.length === 1 ? " is" : " are") + " also here" : "";
  }

  function startPresence() {
    clearInterval(heartbeatTimer);
    if (!convo()) { return; }
    sendHeartbeat(false);
    heartbeatTimer = setInterval(function () { sendHeartbeat(false); }, 10000);
  }

  function leaveCurrent() {
    var c = convo();
    if (!c) { return; }
    var body = new FormData();
    body.append("csrf_token", $('meta[name="csrf-token"]').content);
    navigator.sendBeacon(c.dataset.leaveUrl, body);
  }

  /* --- Lists, counts, live ------------------------------------------------------------ */

  function refreshCounts() {
    fetch(queue.dataset.countsUrl, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (data) {
      Object.keys(data.views).forEach(function (name) {
        $all('[data-count="' + name + '"], [data-count-title="' + name + '"]').forEach(function (el) { el.textContent = data.views[name]; });
      });
      app.setNotificationCount(data.notifications);
    }).catch(function () {});
  }

  function refreshList(force) {
    if (loadedMore && !force) { $("[data-new-activity]").classList.remove("hidden"); return; }
    var keep = picked();
    app.getFragment(queue.dataset.rowsUrl).then(function (html) {
      rowsBox.innerHTML = html;
      loadedMore = false;
      $("[data-new-activity]").classList.add("hidden");
      var c = convo();
      rows().forEach(function (r) {
        var id = r.dataset.conversation;
        r.classList.toggle("selected", !!c && c.dataset.convo === id);
        r.classList.toggle("cursor", id === cursorId);
        $("[data-pick]", r).checked = keep.indexOf(id) >= 0;
      });
      updateBulkbar();
    }).catch(function () {});
  }

  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(function () { refreshList(false); refreshCounts(); }, 250);
  }

  function noteInProgress() {
    var box = $("[data-note-box]", detail);
    return !!box && (box.value.trim() !== "" || document.activeElement === box);
  }

  function onLiveEvent(event) {
    var data;
    try { data = JSON.parse(event.data); } catch (e) { return; }
    if (data.event === "notification") { refreshCounts(); return; }
    var c = convo();
    if (data.event === "presence") {
      if (c && String(data.conversation_id) === c.dataset.convo) { sendHeartbeat(false); }
      return;
    }
    if (data.event === "conversation.updated") {
      scheduleRefresh();
      if (c && String(data.conversation_id) === c.dataset.convo && String(data.actor_id) !== me) {
        // Someone else changed the open conversation: show it, unless that would wipe a note
        // being written (the note's send will then warn about the change instead).
        if (!noteInProgress()) { reloadConversation(); }
        else { app.toast("A colleague or the customer just changed this conversation.", { kind: "warn", actions: [{ label: "Reload", run: reloadConversation }] }); }
      }
    }
  }

  function startLive() {
    if (!window.EventSource) { return; }
    var source = new EventSource(queue.dataset.streamUrl);
    var dot = $("[data-live-indicator]");
    source.onopen = function () { dot.classList.add("on"); dot.title = "Live updates on"; document.body.dataset.live = "on"; };
    source.onerror = function () { dot.classList.remove("on"); dot.title = "Reconnecting…"; };
    source.onmessage = onLiveEvent;
  }

  /* "Get next": claim the most urgent waiting conversation and open it. */
  function getNext() {
    var form = $("[data-get-next]");
    app.post(form.action, new FormData(form)).then(function (res) {
      if (res.status >= 400) { app.toast(errorText(res), { kind: "error" }); return; }
      app.toast(res.data.message);
      if (res.data.url) {
        openConversation(res.data.url, true);
        refreshList(false);
      }
    });
  }

  /* --- Keyboard ------------------------------------------------------------------------- */

  function typingInField(target) {
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }

  function clickKey(key) {
    var button = $('[data-key="' + key + '"]', detail);
    if (button) { button.click(); return true; }
    return false;
  }

  function toggleHelp(show) {
    var help = $("[data-help]");
    help.classList.toggle("hidden", !show);
    if (show) { $("[data-close-help]", help).focus(); }
  }

  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) {
      if (event.key === "Enter" && event.target.matches("[data-note-box], [data-reply-box]")) {
        event.preventDefault();
        var send = $('[type="submit"]', event.target.form);
        if (!send || !send.disabled) { event.target.form.requestSubmit(); }
      }
      return;
    }
    if (event.key === "Escape") {
      toggleHelp(false);
      if (typingInField(event.target)) { event.target.blur(); }
      return;
    }
    if (typingInField(event.target) || !$("[data-confirm]").classList.contains("hidden")) { return; }
    var handled = true;
    switch (event.key) {
      case "j": moveCursor(1); break;
      case "k": moveCursor(-1); break;
      case "Enter": {
        var row = rowFor(cursorId);
        if (row) { openConversation($("[data-open]", row).href, true); } else { handled = false; }
        break;
      }
      case "x": {
        var r = rowFor(cursorId);
        if (r) { var box = $("[data-pick]", r); box.checked = !box.checked; onPick(box, false); }
        break;
      }
      case "g": getNext(); break;
      case "a": handled = clickKey("a"); break;
      case "e": handled = clickKey("e"); break;
      case "n": { var note = $("[data-note-box]", detail); if (note) { note.focus(); } else { handled = false; } break; }
      case "r": { var reply = $("[data-reply-box]", detail); if (reply) { reply.focus(); } else { handled = false; } break; }
      case "/": $("[data-search]").focus(); break;
      case "?": toggleHelp(true); break;
      default: handled = false;
    }
    if (handled) { event.preventDefault(); }
  }

  /* --- Wiring --------------------------------------------------------------------------- */

  function init() {
    queue = $("[data-queue]");
    if (!queue) { return; }
    rowsBox = $("[data-rows]");
    detail = $("[data-detail]");
    me = queue.dataset.me;
    var open = convo();
    if (open) { setCursor(open.dataset.convo); startPresence(); scrollThreadToEnd(); }

    rowsBox.addEventListener("click", function (event) {
      var box = event.target.closest("[data-pick]");
      if (box) { onPick(box, event.shiftKey); return; }
      var more = event.target.closest("[data-more]");
      if (more) {
        event.preventDefault();
        app.getFragment(more.href).then(function (html) {
          var li = more.closest("li");
          li.insertAdjacentHTML("beforebegin", html);
          li.remove();
          loadedMore = true;
          updateBulkbar();
        });
        return;
      }
      var row = event.target.closest(".row");
      if (!row || event.metaKey || event.ctrlKey) { return; }
      event.preventDefault();
      openConversation($("[data-open]", row).href, true);
    });
    $("[data-pick-all]").addEventListener("change", function (event) {
      $all("[data-pick]", rowsBox).forEach(function (b) { b.checked = event.target.checked; });
      updateBulkbar();
    });
    $all("[data-bulk]").forEach(function (button) {
      button.addEventListener("click", function () { runBulk(button.dataset.bulk, "", ""); });
    });
    $all("[data-bulk-select]").forEach(function (select) {
      select.addEventListener("change", function () {
        var value = select.value, label = select.options[select.selectedIndex].text;
        select.value = "";
        if (value) { runBulk(select.dataset.bulkSelect, value, label); }
      });
    });
    $("[data-bulk-clear]").addEventListener("click", clearPicks);
    $("[data-refresh]").addEventListener("click", function () { refreshList(true); });
    $("[data-get-next]").addEventListener("submit", function (event) { event.preventDefault(); getNext(); });

    $all("[data-filters] [data-autosubmit]").forEach(function (s) {
      s.addEventListener("change", function () { s.form.requestSubmit(); });
    });
    /* Filters left at "Any" stay out of the address, so it reads (and is shared) as what it
       filters on. */
    $("[data-filters]").addEventListener("formdata", function (event) {
      Array.from(event.formData.keys()).forEach(function (key) {
        if (event.formData.getAll(key).every(function (v) { return v === ""; })) { event.formData.delete(key); }
      });
    });

    detail.addEventListener("submit", function (event) {
      var form = event.target;
      if (form.matches("form.act")) {
        event.preventDefault();
        /* Routing to a team nobody works and without a helpdesk leaves the customer waiting. */
        var team = form.querySelector("select[name=team] option:checked[data-unstaffed]");
        if (team && !window.confirm("Nobody works the " + team.dataset.unstaffed + " queue and it has no helpdesk: route it there anyway?")) { return; }
        submitAction(form);
        return;
      }
      if (form.matches("[data-contact-form]")) {
        event.preventDefault();
        app.post(form.action, new FormData(form)).then(function (res) {
          app.toast(res.status >= 400 ? errorText(res) : res.data.message, res.status >= 400 ? { kind: "error" } : {});
        });
      }
    });
    detail.addEventListener("change", function (event) {
      var t = event.target;
      if (t.matches("[data-canned]")) { insertCanned(t); return; }
      if (t.matches("[data-autosubmit]") && t.value) { t.form.requestSubmit(); }
    });
    detail.addEventListener("click", function (event) {
      var link = event.target.closest("[data-open-conversation]");
      if (link && !event.metaKey && !event.ctrlKey) { event.preventDefault(); openConversation(link.href, true); }
    });
    detail.addEventListener("change", function (event) {
      if (event.target.matches("[data-reply-visibility]")) {
        var option = event.target.selectedOptions[0];
        var box = $("[data-reply-box]", detail);
        box.dataset.maxLength = option.dataset.maxLength;
        $("[data-reply-max]", detail).textContent = option.dataset.maxLength;
        updateReplyCount(box);
      }
    });
    detail.addEventListener("input", function (event) {
      if (event.target.matches("[data-reply-box]")) { updateReplyCount(event.target); }
      if (!event.target.matches("[data-note-box], [data-reply-box]")) { return; }
      var now = Date.now();
      if (now - lastTypingSent > 3000) { lastTypingSent = now; sendHeartbeat(true); }
    });

    $("[data-close-help]").addEventListener("click", function () { toggleHelp(false); });
    $("[data-help]").addEventListener("click", function (event) { if (event.target.matches("[data-help]")) { toggleHelp(false); } });
    document.addEventListener("keydown", onKey);
    window.addEventListener("popstate", function () {
      if (/\/inbox\/c\/\d+/.test(location.pathname)) { openConversation(location.pathname + location.search, false); }
      else { location.reload(); }
    });
    window.addEventListener("pagehide", leaveCurrent);
    // The page comes without the view counts (counting is the slow part of a page): they
    // arrive with this request, and again after every change.
    refreshCounts();
    startLive();
  }

  document.addEventListener("DOMContentLoaded", init);
})();
