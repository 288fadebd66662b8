/* Live dashboard: initial state from /api/dashboard/, then diffs from /ws/dashboard/.
 *
 * Every event carries a `seq` (one per event, no gaps). The page remembers the last `seq` it
 * reflects; an event with the next `seq` is applied in place, an older one is ignored, and a gap,
 * a truncated diff or a reconnect reloads the snapshot (events arriving meanwhile are buffered and
 * replayed on top of it). So a dashboard left open all night survives network blips without a
 * reload. No inline code, no library: plain DOM and SVG (the CSP forbids anything else).
 */
(function () {
  "use strict";

  var root = document.getElementById("dashboard");
  if (!root) return;
  var T = JSON.parse(document.getElementById("dashboard-i18n").textContent);
  var SVG = "http://www.w3.org/2000/svg";
  var FAILED = ["ABEND", "FAIL", "ERROR"];
  var FINAL = ["SUCC", "ABEND", "FAIL", "SUPPR", "CANCL", "ERROR", "COMPLT", "END"];
  var RUNNING = ["EXEC", "INTRO", "SUCCP", "ABENP"];
  var TIMELINE_ROWS = 60;

  var state = null;          // the snapshot, kept up to date by diffs
  var lastSeq = -1;          // last event reflected in `state`
  var loading = null;        // a pending snapshot fetch
  var buffered = [];         // events received while loading
  var ws = null;
  var retry = 0;
  var pingTimer = null;
  var filters = { folder: "", workstation: "", stream: "", status: "" };
  var lastSuccess = null;

  function has(list, value) { return list.indexOf(value) !== -1; }
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    if (attrs) Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = String(text);
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }
  function jobUrl(id) { return root.dataset.jobUrl.replace("JOB_ID", encodeURIComponent(id)); }
  function fmtTime(iso) {
    if (!iso) return "—";
    var d = new Date(iso);
    return d.toLocaleString(root.dataset.lang || undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", day: "2-digit", month: "2-digit" });
  }
  function statusClass(status) { return "status status-" + String(status || "").toLowerCase(); }

  // --- connection indicator and freshness -------------------------------------------------------

  var conn = document.getElementById("conn-state");
  function setConn(which) {
    conn.className = "conn-dot conn-" + which;
    conn.textContent = conn.dataset["label" + which.charAt(0).toUpperCase() + which.slice(1)];
    root.dataset.conn = which;
  }

  function setFreshness(f) {
    if (f.last_success_at) lastSuccess = new Date(f.last_success_at);
    document.getElementById("as-of").textContent = lastSuccess ? fmtTime(lastSuccess.toISOString()) : "—";
    if (lastSuccess) document.getElementById("as-of").setAttribute("datetime", lastSuccess.toISOString());
    var banner = document.getElementById("stale-banner");
    banner.hidden = !f.stale;
    root.dataset.stale = f.stale ? "true" : "false";
    document.getElementById("stale-message").textContent = f.stale ? (f.message || f.error_message || "") : "";
    tickAge();
  }

  function tickAge() {
    var age = document.getElementById("stale-age");
    if (!lastSuccess) { age.textContent = T.never; return; }
    var seconds = Math.max(0, Math.round((Date.now() - lastSuccess.getTime()) / 1000));
    age.textContent = seconds < 120 ? T.seconds_ago.replace("%s", seconds) : T.minutes_ago.replace("%s", Math.round(seconds / 60));
  }

  // --- snapshot ---------------------------------------------------------------------------------

  function query() {
    var params = new URLSearchParams();
    Object.keys(filters).forEach(function (k) { if (filters[k]) params.set(k, filters[k]); });
    var text = params.toString();
    return root.dataset.api + (text ? "?" + text : "");
  }

  function loadSnapshot() {
    if (loading) return loading;
    loading = fetch(query(), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 401 || response.status === 403) { window.location.reload(); throw new Error("signed out"); }
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (snapshot) {
        state = snapshot;
        lastSeq = snapshot.seq;
        setFreshness(snapshot.freshness);
        var pending = buffered; buffered = [];
        loading = null;
        renderAll();
        pending.forEach(handleEvent);
        root.dataset.ready = "true";
      })
      .catch(function () {
        loading = null;
        setTimeout(loadSnapshot, 3000);
      });
    return loading;
  }

  // --- events -----------------------------------------------------------------------------------

  function handleEvent(event) {
    if (loading || !state) { buffered.push(event); return; }
    if (typeof event.seq === "number") {
      if (event.seq <= lastSeq) return;                 // already in the snapshot
      if (event.seq > lastSeq + 1 || event.truncated) { // missed something: start again from the API
        buffered.push(event);
        loadSnapshot();
        return;
      }
      lastSeq = event.seq;
    }
    root.dataset.seq = String(lastSeq);
    if (event.type === "diff") applyDiff(event);
    else if (event.type === "hwa_status") setFreshness(event);
  }

  // Folders are compared as the API compares them: `/`-wrapped, case ignored (a job is in its stream's folder).
  function folderKey(path) {
    var inner = String(path || "").trim().replace(/^\/+|\/+$/g, "");
    return inner ? ("/" + inner + "/").toUpperCase() : "/";
  }

  function matches(change, status) {
    if (filters.folder && folderKey(change.folder) !== folderKey(filters.folder)) return false;
    if (filters.workstation && change.workstation.toUpperCase() !== filters.workstation.toUpperCase()) return false;
    if (filters.stream && change.stream.toUpperCase() !== filters.stream.toUpperCase()) return false;
    if (filters.status && status !== filters.status) return false;
    return true;
  }

  function dropById(list, id) {
    for (var i = list.length - 1; i >= 0; i--) if (list[i].id === id) list.splice(i, 1);
  }

  function findById(list, id) {
    for (var i = 0; i < list.length; i++) if (list[i].id === id) return list[i];
    return null;
  }

  function applyDiff(event) {
    var filtered = filters.folder || filters.workstation || filters.stream || filters.status;
    if (!filtered && event.counts) state.counts = event.counts;
    var flashed = [];
    (event.changes || []).forEach(function (c) {
      var wasIn = c.previous_status && matches(c, c.previous_status);
      var nowIn = matches(c, c.status);
      if (filtered) {
        if (wasIn) state.counts[c.previous_status] = Math.max(0, (state.counts[c.previous_status] || 0) - 1);
        if (nowIn) state.counts[c.status] = (state.counts[c.status] || 0) + 1;
      }
      var old = findById(state.timeline, c.id) || findById(state.failed, c.id) || findById(state.late, c.id) || {};
      var row = {
        id: c.id, name: c.name, stream: c.stream, folder: c.folder, workstation: c.workstation, status: c.status,
        return_code: c.return_code, critical: c.critical, late: c.late,
        started_at: old.started_at || (has(RUNNING, c.status) || has(FINAL, c.status) ? event.polled_at : null),
        ended_at: has(FINAL, c.status) ? (old.status === c.status && old.ended_at ? old.ended_at : event.polled_at) : null,
        deadline: old.deadline || null
      };
      dropById(state.failed, c.id);
      if (nowIn && has(FAILED, c.status)) state.failed.unshift(row);
      dropById(state.late, c.id);
      if (nowIn && c.late && !has(FINAL, c.status)) state.late.unshift(row);
      var inTimeline = findById(state.timeline, c.id);
      if (inTimeline) { Object.assign(inTimeline, row); }
      else if (nowIn && row.started_at) state.timeline.unshift(row);
      state.streams.forEach(function (s) {
        if (s.name !== c.stream || folderKey(s.folder) !== folderKey(c.folder)) return;
        if (wasIn && has(FINAL, c.previous_status)) s.done -= 1;
        if (wasIn && has(FAILED, c.previous_status)) s.failed -= 1;
        if (nowIn && has(FINAL, c.status)) s.done += 1;
        if (nowIn && has(FAILED, c.status)) s.failed += 1;
      });
      if (nowIn && has(FAILED, c.status) && !has(FAILED, c.previous_status)) bumpAbends(event.polled_at);
      if (nowIn) flashed.push(c.id);
      document.getElementById("last-event").textContent =
        T.last_change.replace("%(job)s", c.stream + "." + c.name).replace("%(from)s", c.previous_status || "—").replace("%(to)s", c.status);
    });
    (event.removed || []).forEach(function (id) {
      dropById(state.failed, id); dropById(state.late, id); dropById(state.timeline, id);
    });
    if (event.polled_at) setFreshness({ stale: false, last_success_at: event.polled_at });
    renderAll(flashed);
  }

  function bumpAbends(iso) {
    var buckets = state.abends_per_hour;
    if (!buckets.length) return;
    var at = new Date(iso).getTime();
    var target = buckets[buckets.length - 1];
    buckets.forEach(function (b) {
      var start = new Date(b.hour).getTime();
      if (at >= start && at < start + 3600000) target = b;
    });
    target.count += 1;
  }

  // --- websocket --------------------------------------------------------------------------------

  function connect() {
    setConn("connecting");
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    ws = new WebSocket(scheme + window.location.host + root.dataset.ws);
    ws.onopen = function () { retry = 0; };
    ws.onmessage = function (message) {
      var event;
      try { event = JSON.parse(message.data); } catch (e) { return; }
      if (event.type === "hello") {
        setConn("live");
        // Every (re)connect starts from the API: whatever happened while offline is in it.
        if (!state || event.seq !== lastSeq) loadSnapshot();
        if (typeof event.stale === "boolean" && state) root.dataset.stale = String(event.stale);
      } else if (event.type === "diff" || event.type === "hwa_status") {
        handleEvent(event);
      }
    };
    var socket = ws;
    ws.onclose = function (close) {
      if (socket !== ws) return;  // an older socket closing after a newer one opened
      setConn("offline");
      clearInterval(pingTimer);
      if (close.code === 4401 || close.code === 4403) { window.location.reload(); return; }
      retry = Math.min(retry + 1, 6);
      setTimeout(function () { if (socket === ws && navigator.onLine !== false) connect(); },
                 Math.min(15000, 500 * Math.pow(2, retry - 1)));
    };
    clearInterval(pingTimer);
    pingTimer = setInterval(function () {
      if (ws && ws.readyState === 1) ws.send(JSON.stringify({ type: "ping" }));
    }, 25000);
  }

  // --- rendering --------------------------------------------------------------------------------

  function renderAll(flashed) {
    if (!state) return;
    renderCounts();
    renderJobs("failed-table", "failed-count", state.failed, false, flashed);
    renderJobs("late-table", "late-count", state.late, true, flashed);
    renderWorkstations();
    renderStreams();
    renderAbends();
    renderTimeline();
  }

  function renderCounts() {
    var entries = Object.keys(state.counts).filter(function (k) { return state.counts[k] > 0; })
      .map(function (k) { return [k, state.counts[k]]; })
      .sort(function (a, b) { return b[1] - a[1]; });
    var table = clear(document.getElementById("counts-table"));
    entries.forEach(function (e) {
      var tr = el("tr", { "data-status": e[0] });
      var th = el("td"); th.appendChild(el("span", { class: statusClass(e[0]) }, e[0]));
      tr.appendChild(th); tr.appendChild(el("td", { class: "num" }, e[1]));
      table.appendChild(tr);
    });
    var chart = clear(document.getElementById("counts-chart"));
    var max = entries.reduce(function (m, e) { return Math.max(m, e[1]); }, 1);
    var rowH = 22, width = 320, labelW = 70;
    var box = svg("svg", { viewBox: "0 0 " + width + " " + Math.max(rowH, entries.length * rowH), "aria-hidden": "true", class: "bars" });
    entries.forEach(function (e, i) {
      var w = Math.max(2, Math.round((width - labelW - 50) * e[1] / max));
      box.appendChild(svg("text", { x: 0, y: i * rowH + 15, class: "label" }, e[0]));
      box.appendChild(svg("rect", { x: labelW, y: i * rowH + 4, width: w, height: rowH - 8, class: "bar " + statusClass(e[0]) }));
      box.appendChild(svg("text", { x: labelW + w + 6, y: i * rowH + 15, class: "value" }, e[1]));
    });
    chart.appendChild(box);
  }

  function renderJobs(tableId, countId, jobs, late, flashed) {
    var body = clear(document.getElementById(tableId));
    document.getElementById(countId).textContent = jobs.length;
    if (!jobs.length) {
      var tr = el("tr"); tr.appendChild(el("td", { colspan: 6, class: "muted" }, late ? T.no_late : T.no_failed));
      body.appendChild(tr); return;
    }
    jobs.slice(0, 100).forEach(function (job) {
      var row = el("tr", { "data-job": job.id, class: flashed && has(flashed, job.id) ? "flash" : "" });
      var name = el("td"); name.appendChild(el("a", { href: jobUrl(job.id) }, job.name));
      if (job.critical) name.appendChild(el("span", { class: "pill bad" }, T.critical));
      row.appendChild(name);
      row.appendChild(el("td", { class: "folder" }, job.folder || "/"));
      row.appendChild(el("td", null, job.stream));
      row.appendChild(el("td", null, job.workstation));
      var st = el("td"); st.appendChild(el("span", { class: statusClass(job.status) }, job.status)); row.appendChild(st);
      row.appendChild(late ? el("td", null, fmtTime(job.deadline)) : el("td", { class: "num" }, job.return_code === null || job.return_code === undefined ? "" : job.return_code));
      body.appendChild(row);
    });
  }

  function renderWorkstations() {
    var h = state.workstation_health;
    document.getElementById("ws-linked").textContent = h.linked;
    document.getElementById("ws-unlinked").textContent = h.unlinked;
    document.getElementById("ws-down").textContent = h.not_running;
    var list = clear(document.getElementById("ws-list"));
    state.workstations.forEach(function (w) {
      var kind = !w.linked ? "bad" : (!w.running ? "warn" : "ok");
      var label = !w.linked ? T.unlinked : (!w.running ? T.not_running : T.linked);
      var li = el("li", { class: "ws ws-" + kind });
      li.appendChild(el("span", { class: "ws-name" }, w.name));
      li.appendChild(el("span", { class: "pill " + kind }, label));
      list.appendChild(li);
    });
  }

  // HWA's notation: WS#/FOLDER/STREAM, or WS#STREAM for the root folder.
  function streamLabel(s) {
    var folder = s.folder && s.folder !== "/" ? s.folder : "";
    return s.workstation + "#" + folder + s.name;
  }

  function renderStreams() {
    var list = clear(document.getElementById("stream-list"));
    state.streams.forEach(function (s) {
      var li = el("li");
      var id = "sp-" + ((s.folder || "/") + s.name).replace(/[^A-Za-z0-9_-]/g, "_");
      li.appendChild(el("label", { for: id }, streamLabel(s)));
      var bar = el("progress", { id: id, max: Math.max(1, s.total), value: s.done, class: s.failed ? "has-failed" : "" });
      li.appendChild(bar);
      li.appendChild(el("span", { class: "muted" }, s.done + "/" + s.total + (s.failed ? " · " + s.failed + " " + T.failed : "")));
      list.appendChild(li);
    });
  }

  function renderAbends() {
    var chart = clear(document.getElementById("abends-chart"));
    var buckets = state.abends_per_hour;
    var max = buckets.reduce(function (m, b) { return Math.max(m, b.count); }, 1);
    var width = 24 * 14, height = 110;
    var box = svg("svg", { viewBox: "0 0 " + width + " " + (height + 16), "aria-hidden": "true", class: "bars" });
    buckets.forEach(function (b, i) {
      var h = Math.round((height - 14) * b.count / max);
      var rect = svg("rect", { x: i * 14 + 1, y: height - h, width: 12, height: Math.max(h, b.count ? 2 : 0), class: "bar status-abend" });
      rect.appendChild(svg("title", null, new Date(b.hour).getHours() + "h: " + b.count));
      box.appendChild(rect);
      if (b.count) box.appendChild(svg("text", { x: i * 14 + 7, y: height - h - 2, class: "value small", "text-anchor": "middle" }, b.count));
      if (i % 3 === 0) box.appendChild(svg("text", { x: i * 14 + 1, y: height + 13, class: "label small" }, new Date(b.hour).getHours() + "h"));
    });
    chart.appendChild(box);
    var total = buckets.reduce(function (s, b) { return s + b.count; }, 0);
    chart.setAttribute("aria-label", T.abends_label.replace("%s", total));
  }

  function renderTimeline() {
    var area = clear(document.getElementById("timeline"));
    var rows = state.timeline.filter(function (j) { return j.started_at; }).slice(0, TIMELINE_ROWS);
    if (!rows.length) { area.appendChild(el("p", { class: "muted" }, T.no_runs)); return; }
    var now = Date.now();
    var starts = rows.map(function (j) { return new Date(j.started_at).getTime(); });
    var ends = rows.map(function (j) { return j.ended_at ? new Date(j.ended_at).getTime() : Math.max(new Date(j.started_at).getTime(), Math.min(now, Math.max.apply(null, starts) + 600000)); });
    var t0 = Math.min.apply(null, starts), t1 = Math.max.apply(null, ends);
    if (t1 <= t0) t1 = t0 + 60000;
    var labelW = 230, width = 1100, rowH = 16;
    var box = svg("svg", { viewBox: "0 0 " + width + " " + (rows.length * rowH + 20), class: "gantt", role: "img", "aria-label": T.timeline_label.replace("%s", rows.length) });
    for (var k = 0; k <= 4; k++) {
      var x = labelW + (width - labelW - 10) * k / 4;
      box.appendChild(svg("line", { x1: x, y1: 0, x2: x, y2: rows.length * rowH, class: "grid" }));
      box.appendChild(svg("text", { x: x, y: rows.length * rowH + 14, class: "label small", "text-anchor": "middle" },
        new Date(t0 + (t1 - t0) * k / 4).toLocaleTimeString(root.dataset.lang || undefined, { hour: "2-digit", minute: "2-digit" })));
    }
    rows.forEach(function (j, i) {
      var x0 = labelW + (width - labelW - 10) * (starts[i] - t0) / (t1 - t0);
      var x1 = labelW + (width - labelW - 10) * (ends[i] - t0) / (t1 - t0);
      var link = svg("a", { href: jobUrl(j.id) });
      link.appendChild(svg("text", { x: 0, y: i * rowH + 12, class: "label small" }, (j.stream + "." + j.name).slice(0, 36)));
      var bar = svg("rect", { x: x0, y: i * rowH + 3, width: Math.max(3, x1 - x0), height: rowH - 5, class: "bar " + statusClass(j.status) });
      bar.appendChild(svg("title", null, j.stream + "." + j.name + " " + j.status + " " + fmtTime(j.started_at) + " → " + fmtTime(j.ended_at)));
      link.appendChild(bar);
      box.appendChild(link);
    });
    area.appendChild(box);
  }

  // --- filters ----------------------------------------------------------------------------------

  var form = document.getElementById("filters");
  var initial = new URLSearchParams(window.location.search);
  Object.keys(filters).forEach(function (k) {
    var select = form.elements[k];
    if (initial.get(k)) { filters[k] = initial.get(k); select.value = filters[k]; }
    select.addEventListener("change", function () {
      filters[k] = select.value;
      var params = new URLSearchParams();
      Object.keys(filters).forEach(function (f) { if (filters[f]) params.set(f, filters[f]); });
      window.history.replaceState(null, "", window.location.pathname + (params.toString() ? "?" + params : ""));
      state = null; lastSeq = -1;
      loadSnapshot();
    });
  });
  form.addEventListener("submit", function (e) { e.preventDefault(); });

  // The browser knows the network went away before TCP does: drop the socket at once (the page
  // says "offline"), and reconnect as soon as the network is back, then catch up from the API.
  window.addEventListener("offline", function () { if (ws) ws.close(); });
  window.addEventListener("online", function () {
    retry = 0;
    if (!ws || ws.readyState > 1) connect();
  });

  setInterval(tickAge, 5000);
  // A full refresh now and then picks up what no event carries (workstation links, stream states).
  setInterval(function () { if (!loading && ws && ws.readyState === 1) loadSnapshot(); }, 300000);
  connect();
})();
