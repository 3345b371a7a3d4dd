/* autotrack ui: runs table, run page, compare page.
   Routes: #/?q=WHERE&order=COL&dir=asc|desc&cols=..&sel=..&page=N , #/run/ID , #/compare/ID,ID,...?keys=.. , #/trials/ID?keys=.. (a run's children),
   #/models , #/models/NAME
   Every panel draws inside AT.guard: one failing panel shows its own error, the rest of the page works. */
(function () {
  "use strict";
  var esc = AT.esc, fmt = AT.fmt, main = document.getElementById("main");
  var timer = null, view = 0;
  var statusOf = {};  /* run id -> last status seen (bulk delete skips live runs) */

  function api(path, body) {
    var init = {headers: {"Accept": "application/json"}};
    if (body !== undefined) { init.method = "POST"; init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
    return fetch(path, init).then(function (r) {
      return r.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (!r.ok) throw new Error((data && data.error) || r.status + " " + r.statusText);
        if (data === null) throw new Error("the server sent no data for " + path);
        return data;
      });
    });
  }
  function when(ts) { return ts ? new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19) : ""; }
  function dur(s) {
    if (s === null || s === undefined) return "";
    if (s < 120) return s.toFixed(1) + " s";
    if (s < 7200) return (s / 60).toFixed(1) + " min";
    return (s / 3600).toFixed(1) + " h";
  }
  function status(s) { return '<span class="badge status-' + esc(s) + '">' + esc(s) + "</span>"; }
  function ready(name) { document.body.setAttribute("data-ready", name); }
  function poll(fn, ms) { clearTimeout(timer); var v = view; timer = setTimeout(function () { if (v === view) fn(); }, ms); }
  // A search's trials (Optuna trials, scikit-learn candidates): one row each, with its value and params.
  function trialTable(trials) {
    var keys = {};
    trials.forEach(function (t) { Object.keys(t.params || {}).forEach(function (k) { keys[k] = true; }); });
    keys = Object.keys(keys).sort();
    var valueKey = (trials.filter(function (t) { return t.value_key; })[0] || {}).value_key || "value";
    var head = "<tr><th>trial</th><th>state</th><th>" + esc(valueKey) + "</th><th>pruned at</th>" +
      keys.map(function (k) { return "<th>" + esc(k) + "</th>"; }).join("") + "<th>run</th></tr>";
    var rows = trials.map(function (t) {
      return '<tr data-trial="' + esc(String(t.trial)) + '"><td>' + esc(String(t.trial)) + "</td><td>" + esc(t.state || "") + "</td>" +
        '<td class="num">' + (t.value === null || t.value === undefined ? "" : esc(fmt(t.value))) + "</td>" +
        "<td>" + esc(t.pruned_step === null || t.pruned_step === undefined ? "" : String(t.pruned_step)) + "</td>" +
        keys.map(function (k) { var v = (t.params || {})[k]; return "<td>" + (v === undefined || v === null ? "" : esc(fmt(v))) + "</td>"; }).join("") +
        '<td><a href="#/run/' + esc(t.id) + '">' + esc(t.name) + "</a> " + status(t.status) + "</td></tr>";
    }).join("");
    return '<table class="kv" id="trial-table"><thead>' + head + "</thead><tbody>" + rows + "</tbody></table>";
  }

  function kvTable(obj, id) {
    var keys = Object.keys(obj || {});
    if (!keys.length) return '<p class="muted">none</p>';
    return '<table class="kv"' + (id ? ' id="' + id + '"' : "") + "><tbody>" + keys.map(function (k) {
      return "<tr><th>" + esc(k) + '</th><td title="' + esc(fmt(obj[k])) + '">' + esc(fmt(obj[k])) + "</td></tr>"; }).join("") + "</tbody></table>";
  }
  function panel(id, what, fn) { return AT.guard(document.getElementById(id), what, fn); }
  function hashQuery() {
    var h = location.hash.replace(/^#\/?/, ""), i = h.indexOf("?");
    return new URLSearchParams(i >= 0 ? h.slice(i + 1) : "");
  }
  function splitList(s) { return s ? s.split(",").filter(Boolean).map(decodeURIComponent) : []; }
  function joinList(a) { return a.map(encodeURIComponent).join(","); }

  /* ---------------- runs table ---------------- */
  var BASE_COLS = {name: "name", status: "status", experiment: "experiment", start: "start (UTC)", duration: "duration"};
  function colLabel(c) {
    if (BASE_COLS[c]) return BASE_COLS[c];
    var m = c.match(/^(min|max)\(metrics\.(.*)\)$/);
    if (m) return m[2] + " (" + m[1] + ")";
    if (c.indexOf("metrics.") === 0) return c.slice(8);
    if (c.indexOf("params.") === 0) return c.slice(7);
    if (c.indexOf("tags.") === 0) return "#" + c.slice(5);
    return c;
  }
  function colKind(c) {
    if (/^(min|max)\(metrics\./.test(c) || c.indexOf("metrics.") === 0 || c === "duration") return "num";
    return c.indexOf("params.") === 0 ? "param" : "text";
  }
  function cellValue(r, c) {
    var m = c.match(/^(min|max)\(metrics\.(.*)\)$/);
    if (m) return (r.metrics[m[2]] || {})[m[1]];
    if (c.indexOf("metrics.") === 0) return (r.metrics[c.slice(8)] || {}).last;
    if (c.indexOf("params.") === 0) return r.params[c.slice(7)];
    if (c.indexOf("tags.") === 0) return r.tags[c.slice(5)];
    if (c === "start") return when(r.start_time);
    if (c === "duration") return r.duration === null ? (r.status === "running" ? "running" : "") : dur(r.duration);
    return r[c];
  }
  /* The columns the CLI's and the report's tables pick (autotrack._sections.table_columns): metrics
     in the readers' order (training loss, validation and test metrics, the user's own, the rest of
     train/; timings after the scores of the same rank), then the ones most runs have; params whose
     values differ among the runs that have them (not a setting all Lightning runs share beside
     scikit-learn runs that lack it), the ones most runs have first. */
  function metricRank(k) {
    if (k === "train/loss") return 0;
    if (/^(val|valid|validation|test|eval)\//.test(k)) return 1;
    return /^train\//.test(k) ? 3 : 2;
  }
  function defaultCols(rows) {
    var mvals = {}, pvals = {}, pcount = {};
    rows.forEach(function (r) {
      Object.keys(r.metrics).forEach(function (k) {
        if (!/^(system|grad_norm)\//.test(k)) (mvals[k] = mvals[k] || []).push(r.metrics[k].last);
      });
      Object.keys(r.params).forEach(function (k) {
        if (r.params[k] === null) return;
        (pvals[k] = pvals[k] || new Set()).add(JSON.stringify(r.params[k]));
        pcount[k] = (pcount[k] || 0) + 1;
      });
    });
    var mk = Object.keys(mvals), differs = mk.filter(function (k) {
      return mvals[k].length < rows.length || new Set(mvals[k].map(String)).size > 1; });
    mk = (differs.length ? differs : mk).sort(function (a, b) {
      return metricRank(a) - metricRank(b) || (/_time$/.test(a) - /_time$/.test(b)) ||
        mvals[b].length - mvals[a].length || (a < b ? -1 : 1); }).slice(0, 4);
    var pk = Object.keys(pvals), varying = pk.filter(function (k) { return pvals[k].size > 1; });
    pk = (varying.length ? varying : pk).sort(function (a, b) {
      return pcount[b] - pcount[a] || (a < b ? -1 : 1); }).slice(0, 5);
    var cols = ["status", "experiment", "start", "duration"];
    mk.forEach(function (k) { cols.push("metrics." + k); if (/loss|err|rmse|mae/.test(k)) cols.push("min(metrics." + k + ")"); });
    return cols.concat(pk.map(function (k) { return "params." + k; }));
  }

  function runsState() {
    var q = hashQuery();
    return {q: q.get("q") || "", order: q.get("order") || "", dir: q.get("dir") || "desc",
            cols: q.has("cols") ? splitList(q.get("cols")) : null, sel: splitList(q.get("sel")),
            page: Math.max(0, parseInt(q.get("page") || "0", 10) || 0)};
  }
  function runsHash(st) {
    var q = new URLSearchParams();
    if (st.q) q.set("q", st.q);
    if (st.order) { q.set("order", st.order); q.set("dir", st.dir); }
    if (st.cols) q.set("cols", joinList(st.cols));
    if (st.sel.length) q.set("sel", st.sel.join(","));
    if (st.page) q.set("page", String(st.page));
    var s = q.toString();
    return "#/" + (s ? "?" + s : "");
  }
  /* a plain word searches names; anything else is the query language */
  function toWhere(text) {
    text = text.trim();
    if (!text) return "";
    if (/^[\w\-.]+$/.test(text) && !/^(and|or|not)$/i.test(text)) return "name like '%" + text + "%' or id like '" + text + "%'";
    return text;
  }

  var PAGE = 50;
  function runsPage() {
    var myView = view, st = runsState(), expanded = {}, lastData = null, confirmDelete = false;
    main.setAttribute("data-view", "runs");
    main.innerHTML = '<div class="view">' +
      '<div class="toolbar"><form id="search-form" class="search"><input id="search" type="search" spellcheck="false" autocomplete="off" ' +
      'placeholder="params.lr < 0.01 and status = \'finished\'  ·  min(metrics.val/loss) < 0.3  ·  a name" value="' + esc(st.q) + '">' +
      '<button type="submit">filter</button></form>' +
      '<details id="col-picker" class="picker"><summary>columns</summary><div class="picker-body"></div></details>' +
      '<span id="count" class="muted"></span><span class="spacer"></span><span id="pager"></span></div>' +
      '<div id="where-error" class="inline-error" hidden></div>' +
      '<div id="actions" class="actions" hidden></div>' +
      '<div class="table-wrap"><table id="runs-table" class="runs"><thead></thead><tbody></tbody></table></div>' +
      '<p class="muted help">Filter and sort run in the store. Columns: <code>name</code> <code>status</code> <code>experiment</code> <code>start</code> ' +
      "<code>duration</code> <code>params.KEY</code> <code>metrics.KEY</code> (last value) <code>min(metrics.KEY)</code> <code>max(metrics.KEY)</code> <code>tags.KEY</code>; " +
      "operators <code>= != &lt; &lt;= &gt; &gt;=</code>, <code>like '%x%'</code>, <code>in (…)</code>, <code>is null</code>, <code>and or not</code>.</p></div>";
    var host = main.firstElementChild;
    var search = document.getElementById("search");
    function go(newSt, push) {
      st = newSt;
      var h = runsHash(st);
      if (push) history.pushState(null, "", h); else history.replaceState(null, "", h);
      load();
    }
    document.getElementById("search-form").addEventListener("submit", function (e) {
      e.preventDefault();
      go(Object.assign({}, st, {q: search.value.trim(), page: 0}), true);
    });
    function load() {
      var params = new URLSearchParams({limit: String(PAGE), offset: String(st.page * PAGE)});
      var where = toWhere(st.q);
      if (where) params.set("where", where);
      if (st.order) { params.set("order", st.order); params.set("desc", st.dir === "desc" ? "1" : "0"); }
      return api("/api/runs?" + params.toString()).then(function (data) {
        if (myView !== view) return;
        if (data.query_error) throw new Error(data.query_error);
        document.getElementById("where-error").hidden = true;
        lastData = data;
        data.runs.forEach(function (r) { statusOf[r.id] = r.status; });
        draw();
        ready("runs");
        var live = data.runs.some(function (r) { return r.status === "running"; });
        document.getElementById("live").textContent = live ? "live: refreshing every 5 s" : "";
        if (live) poll(function () { load(); }, 5000);
      }).catch(function (err) {
        if (myView !== view) return;
        var box = document.getElementById("where-error");
        box.textContent = err.message;
        box.hidden = false;
        if (!lastData) { lastData = {runs: [], total: 0, offset: 0}; draw(); }
        ready("runs");
      });
    }
    function visibleRows() {
      var out = [];
      lastData.runs.forEach(function (r) { out.push(r); if (expanded[r.id] && expanded[r.id].rows) out = out.concat(expanded[r.id].rows); });
      return out;
    }
    function cols() { return st.cols || defaultCols(visibleRows()); }
    function draw() {
      var data = lastData, cs = cols();
      var table = document.getElementById("runs-table");
      var allSel = data.runs.length && data.runs.every(function (r) { return st.sel.indexOf(r.id) >= 0; });
      table.tHead.innerHTML = '<tr><th class="pin-0"><input type="checkbox" id="sel-all" title="select the runs on this page"' + (allSel ? " checked" : "") + "></th>" +
        ["name"].concat(cs).map(function (c, i) {
          var arrow = st.order === c ? (st.dir === "desc" ? " ▼" : " ▲") : "";
          return '<th class="sortable ' + (i === 0 ? "pin-1 " : "") + colKind(c) + '" data-col="' + esc(c) + '" title="sort by ' + esc(c) + '">' + esc(colLabel(c)) + arrow + "</th>";
        }).join("") + "</tr>";
      var html = [];
      data.runs.forEach(function (r) {
        html.push(rowHtml(r, cs, 0));
        if (expanded[r.id] && expanded[r.id].rows) expanded[r.id].rows.forEach(function (c) { html.push(rowHtml(c, cs, 1)); });
      });
      table.tBodies[0].innerHTML = html.join("") || '<tr><td colspan="' + (cs.length + 2) + '" class="muted">no runs match</td></tr>';
      var a = data.total ? data.offset + 1 : 0, b = data.offset + data.runs.length;
      document.getElementById("count").textContent = a + "–" + b + " of " + data.total + (data.nested ? " top-level runs" : " runs");
      var pages = Math.max(1, Math.ceil(data.total / PAGE));
      document.getElementById("pager").innerHTML = '<button id="prev"' + (st.page > 0 ? "" : " disabled") + '>‹ prev</button> page ' + (st.page + 1) + " of " + pages +
        ' <button id="next"' + (st.page + 1 < pages ? "" : " disabled") + ">next ›</button>";
      drawPicker();
      drawActions();
    }
    function rowHtml(r, cs, depth) {
      var sel = st.sel.indexOf(r.id) >= 0;
      var toggle = r.children ? '<button class="twisty" data-id="' + esc(r.id) + '" title="show the ' + r.children + ' child runs">' + (expanded[r.id] ? "▾" : "▸") + " " + r.children + "</button>" : "";
      return '<tr data-id="' + esc(r.id) + '" class="' + (depth ? "child" : "") + (sel ? " selected" : "") + '"><td class="pin-0"><input type="checkbox" class="sel" data-id="' + esc(r.id) + '"' + (sel ? " checked" : "") + "></td>" +
        '<td class="pin-1 name">' + (depth ? '<span class="indent">└</span>' : "") + toggle + '<a href="#/run/' + esc(r.id) + '">' + esc(r.name) + '</a> <span class="muted id">' + esc(r.id.slice(0, 8)) + "</span>" +
        (r.parent_id && !depth ? ' <a class="muted parent" href="#/run/' + esc(r.parent_id) + '" title="parent run">↑' + esc(r.parent_id.slice(0, 6)) + "</a>" : "") + "</td>" +
        cs.map(function (c) {
          var v = cellValue(r, c), text = c === "status" ? status(v) : esc(fmt(v));
          return '<td class="' + colKind(c) + '" title="' + esc(fmt(v)) + '">' + text + "</td>";
        }).join("") + "</tr>";
    }
    function drawActions() {
      var box = document.getElementById("actions"), n = st.sel.length;
      box.hidden = n === 0;
      if (!n) return;
      var live = st.sel.filter(function (id) { return statusOf[id] === "running"; }).length;
      if (confirmDelete) {
        var k = n - live;
        box.innerHTML = '<b>Delete ' + k + " run" + (k === 1 ? "" : "s") + " permanently?</b> Their metrics, params and artifacts are removed; this cannot be undone." +
          (live ? " " + live + " live run" + (live === 1 ? " is" : "s are") + " skipped (a running run cannot be deleted)." : "") +
          ' <button id="delete-yes" class="danger"' + (k ? "" : " disabled") + '>delete</button> <button id="delete-no">cancel</button>';
        return;
      }
      box.innerHTML = "<b>" + n + " selected</b> " +
        '<button id="compare"' + (n >= 1 ? "" : " disabled") + ">compare</button> " +
        '<form id="bulk-tag" class="inline"><input id="bulk-tag-input" placeholder="tag: key=value" size="16"> <button type="submit">tag</button></form> ' +
        '<button id="delete" class="danger-outline"' + (n - live > 0 ? "" : " disabled") + (live ? ' title="live runs cannot be deleted"' : "") + ">delete…</button> " +
        '<button id="clear-sel">clear selection</button> <span id="action-msg" class="muted"></span>';
      document.getElementById("bulk-tag").addEventListener("submit", function (e) {
        e.preventDefault();
        var text = document.getElementById("bulk-tag-input").value, i = text.indexOf("=");
        var key = (i >= 0 ? text.slice(0, i) : text).trim(), value = i >= 0 ? text.slice(i + 1).trim() : "";
        if (!key) return;
        var tags = {}; tags[key] = value;
        api("/api/runs/bulk", {action: "tag", ids: st.sel, tags: tags}).then(function (res) {
          load().then(function () { showMsg(res); });
        }).catch(function (err) { document.getElementById("action-msg").textContent = err.message; });
      });
    }
    function showMsg(res) {
      var m = document.getElementById("action-msg");
      if (!m) return;
      var errs = Object.keys(res.errors || {});
      m.textContent = res.done.length + " done" + (errs.length ? "; " + errs.map(function (id) { return id.slice(0, 8) + ": " + res.errors[id]; }).join("; ") : "");
      m.className = errs.length ? "inline-error" : "muted";
    }
    function drawPicker() {
      var body = document.querySelector("#col-picker .picker-body"), cs = cols();
      var params = {}, metrics = {}, tags = {};
      visibleRows().forEach(function (r) {
        Object.keys(r.params).forEach(function (k) { params[k] = 1; });
        Object.keys(r.metrics).forEach(function (k) { metrics[k] = 1; });
        Object.keys(r.tags).forEach(function (k) { tags[k] = 1; });
      });
      cs.forEach(function (c) {
        var m = c.match(/^(?:min|max)\(metrics\.(.*)\)$/);
        if (m) metrics[m[1]] = 1;
        else if (c.indexOf("params.") === 0) params[c.slice(7)] = 1;
        else if (c.indexOf("metrics.") === 0) metrics[c.slice(8)] = 1;
        else if (c.indexOf("tags.") === 0) tags[c.slice(5)] = 1;
      });
      function box(c, label) { return '<label><input type="checkbox" data-col="' + esc(c) + '"' + (cs.indexOf(c) >= 0 ? " checked" : "") + "> " + esc(label) + "</label>"; }
      var filter = (body.querySelector("#col-filter") || {}).value || "";
      function keep(k) { return !filter || k.toLowerCase().indexOf(filter.toLowerCase()) >= 0; }
      body.innerHTML = '<input id="col-filter" placeholder="find a column" value="' + esc(filter) + '"> <button id="col-reset" type="button">default columns</button>' +
        '<div class="picker-groups"><div><h4>run</h4>' + Object.keys(BASE_COLS).filter(function (c) { return c !== "name"; }).map(function (c) { return box(c, BASE_COLS[c]); }).join("") +
        "</div><div><h4>params</h4>" + Object.keys(params).sort().filter(keep).map(function (k) { return box("params." + k, k); }).join("") +
        '</div><div><h4>metrics <span class="muted">last · min · max</span></h4>' + Object.keys(metrics).sort().filter(keep).map(function (k) {
          return '<div class="metric-row"><span>' + esc(k) + "</span>" + box("metrics." + k, "last") + box("min(metrics." + k + ")", "min") + box("max(metrics." + k + ")", "max") + "</div>"; }).join("") +
        "</div><div><h4>tags</h4>" + (Object.keys(tags).sort().filter(keep).map(function (k) { return box("tags." + k, k); }).join("") || '<span class="muted">none on this page</span>') + "</div></div>";
      var f = body.querySelector("#col-filter");
      if (filter) { f.focus(); f.setSelectionRange(filter.length, filter.length); }
    }
    var picker = document.getElementById("col-picker");
    picker.addEventListener("change", function (e) {
      var c = e.target.getAttribute("data-col"); if (!c) return;
      var cs = cols().slice();
      if (e.target.checked && cs.indexOf(c) < 0) cs.push(c);
      if (!e.target.checked) cs = cs.filter(function (x) { return x !== c; });
      go(Object.assign({}, st, {cols: cs}), false);
    });
    picker.addEventListener("input", function (e) { if (e.target.id === "col-filter") drawPicker(); });
    picker.addEventListener("click", function (e) { if (e.target.id === "col-reset") go(Object.assign({}, st, {cols: null}), false); });
    host.addEventListener("click", function (e) {
      var t = e.target;
      var th = t.closest("th.sortable");
      if (th) {
        var c = th.getAttribute("data-col");
        var dir = st.order === c ? (st.dir === "desc" ? "asc" : "desc") : (colKind(c) === "num" ? "asc" : "desc");
        if (c === "start" && st.order !== c) dir = "desc";
        go(Object.assign({}, st, {order: c, dir: dir, page: 0}), true);
        return;
      }
      if (t.id === "prev") { go(Object.assign({}, st, {page: Math.max(0, st.page - 1)}), true); return; }
      if (t.id === "next") { go(Object.assign({}, st, {page: st.page + 1}), true); return; }
      if (t.classList.contains("twisty")) {
        var id = t.getAttribute("data-id");
        if (expanded[id]) { delete expanded[id]; draw(); return; }
        expanded[id] = {rows: null};
        var p = new URLSearchParams({parent: id, limit: "500"});
        if (st.order) { p.set("order", st.order); p.set("desc", st.dir === "desc" ? "1" : "0"); }
        api("/api/runs?" + p.toString()).then(function (d) {
          if (!expanded[id]) return;
          expanded[id].rows = d.runs;
          d.runs.forEach(function (r) { statusOf[r.id] = r.status; });
          draw();
        }).catch(function (err) { delete expanded[id]; document.getElementById("where-error").textContent = err.message; document.getElementById("where-error").hidden = false; });
        return;
      }
      if (t.id === "compare") { location.hash = "#/compare/" + st.sel.join(","); return; }
      if (t.id === "clear-sel") { st.sel = []; history.replaceState(null, "", runsHash(st)); draw(); return; }
      if (t.id === "delete") { confirmDelete = true; drawActions(); return; }
      if (t.id === "delete-no") { confirmDelete = false; drawActions(); return; }
      if (t.id === "delete-yes") {
        var ids = st.sel.filter(function (i) { return statusOf[i] !== "running"; });
        confirmDelete = false;
        api("/api/runs/bulk", {action: "delete", ids: ids}).then(function (res) {
          st.sel = st.sel.filter(function (i) { return res.done.indexOf(i) < 0; });
          history.replaceState(null, "", runsHash(st));
          return load().then(function () { showMsg(res); });
        }).catch(function (err) { var m = document.getElementById("action-msg"); if (m) m.textContent = err.message; });
      }
    });
    host.addEventListener("change", function (e) {
      var t = e.target;
      if (t.classList.contains("sel")) {
        var id = t.getAttribute("data-id");
        st.sel = st.sel.filter(function (x) { return x !== id; });
        if (t.checked) st.sel.push(id);
        history.replaceState(null, "", runsHash(st));
        confirmDelete = false;
        t.closest("tr").classList.toggle("selected", t.checked);
        drawActions();
      } else if (t.id === "sel-all") {
        var pageIds = [];
        lastData.runs.forEach(function (r) { pageIds.push(r.id); if (expanded[r.id] && expanded[r.id].rows) expanded[r.id].rows.forEach(function (c) { pageIds.push(c.id); }); });
        st.sel = st.sel.filter(function (x) { return pageIds.indexOf(x) < 0; });
        if (t.checked) st.sel = st.sel.concat(pageIds);
        history.replaceState(null, "", runsHash(st));
        draw();
      }
    });
    load();
  }

  /* ---------------- run page ---------------- */
  function runPage(id) {
    var myView = view, charts = null, system = null, grads = null, run = null;
    var base = "/api/runs/" + encodeURIComponent(id);
    main.setAttribute("data-view", "run");
    main.innerHTML = '<div class="view"><p class="muted">loading…</p></div>';
    var host = main.firstElementChild;
    function seriesKeys(stats) {
      return Object.keys(stats).filter(function (k) { return stats[k].count > 1; });
    }
    function first() {
      return api(base).then(function (r) {
        if (myView !== view) return;
        run = r;
        statusOf[r.id] = r.status;
        var stats = r.metric_stats || {};
        var split = AT.splitKeys(seriesKeys(stats));
        var curves = split.train.filter(function (k) { return k.indexOf("grad_norm/") !== 0; });
        var layers = split.train.filter(function (k) { return k.indexOf("grad_norm/") === 0; });
        var single = Object.keys(stats).filter(function (k) { return stats[k].count <= 1; });
        var kids = (r.children || []).map(function (c) {
          return '<a href="#/run/' + esc(c.id) + '">' + esc(c.name) + "</a> " + status(c.status); }).join(" · ");
        host.innerHTML =
          '<div class="run-head"><h1 id="run-name"><span class="name-text">' + esc(r.name) + '</span> <button id="rename" class="small" title="rename">rename</button></h1>' +
          '<span class="muted id">' + esc(r.id) + "</span></div>" +
          '<p class="status-line" id="status-line"></p>' +
          (r.error ? '<div class="error-box" id="run-error"><b>' + esc(r.error.type || "error") + ":</b> " + esc(r.error.message || "") +
            (r.error.traceback ? "<details><summary>traceback</summary><pre>" + esc(r.error.traceback) + "</pre></details>" : "") + "</div>" : "") +
          (r.degraded ? '<div class="warn-box">autotrack could not record everything for this run: ' + esc(fmt(r.degraded)) + "</div>" : "") +
          (kids && !(r.trials || []).length ? '<p class="children">child runs: ' + kids + "</p>" : "") +
          ((r.trials || []).length ? '<h2>Trials <span class="muted">' + r.trials.length + '</span> <a class="small-link" id="compare-trials" href="#/trials/' + esc(r.id) + '">compare the trials</a></h2>' + trialTable(r.trials) : "") +
          '<div class="annotate"><div id="tags-box"></div><div id="note-box"></div></div>' +
          '<div class="summary-grid"><section><h2>Params <span class="muted">' + Object.keys(r.params || {}).length + "</span></h2>" +
          '<div id="run-params"></div></section>' +
          '<section><h2>Metrics</h2><div id="run-summary"></div></section></div>' +
          (curves.length ? '<h2>Charts</h2><div id="run-metrics"></div>' : "") +
          (layers.length ? '<details id="run-grads"><summary>per-layer gradient norms (' + layers.length + ")</summary><div id=\"run-grad-charts\"></div></details>" : "") +
          (split.system.length ? '<h2>System metrics</h2><div id="run-system"></div>' : "") +
          (evalPlots().length ? '<h2>Evaluation plots</h2><div id="run-evalplots"></div>' : "") +
          '<h2>Artifacts</h2><div id="run-artifacts"></div><div id="artifact-preview"></div>' +
          (r.machine && Object.keys(r.machine).length ? "<h2>Machine</h2>" + kvTable(r.machine) : "") +
          '<h2>Captured sections</h2><div id="run-sections"></div>';
        drawStatus();
        panel("tags-box", "tags", drawTags);
        panel("note-box", "note", function () { drawNote(false); });
        panel("run-params", "params", function () { document.getElementById("run-params").innerHTML = kvTable(r.params, "params-table"); });
        panel("run-summary", "metric summary", function () { drawSummary(stats, single); });
        panel("run-artifacts", "artifacts", drawArtifacts);
        panel("run-sections", "sections", function () {
          document.getElementById("run-sections").innerHTML = Object.keys(r.sections || {}).map(function (name) {
            return '<details class="section"><summary>' + esc(name) + "</summary><pre>" + esc(JSON.stringify(r.sections[name], null, 2)) + "</pre></details>";
          }).join("") || '<p class="muted">no captured sections</p>';
        });
        var waits = [];
        if (evalPlots().length) waits.push(loadEvalPlots());
        if (curves.length) waits.push(loadCharts("run-metrics", curves, function (p) { charts = p; }));
        if (split.system.length) waits.push(loadCharts("run-system", split.system, function (p) { system = p; }));
        if (layers.length) {
          document.getElementById("run-grads").addEventListener("toggle", function (e) {
            if (e.target.open && !grads) loadCharts("run-grad-charts", layers, function (p) { grads = p; });
          });
        }
        return Promise.all(waits).then(function () { ready("run"); schedule(); });
      });
    }
    // Classifier evaluation plots (JSON arrays stored with each recorded fit): drawn here from the
    // arrays, one row per data set; the PNG twins stay in the artifact table (preview).
    function evalPlots() {
      return (run.artifacts || []).filter(function (a) {
        return a.stored && a.preview === "json" && a.metadata && a.metadata.plot && /\.json$/.test(a.name);
      });
    }
    function loadEvalPlots() {
      var arts = evalPlots(), div = document.getElementById("run-evalplots"), rows = {};
      arts.forEach(function (a) {
        var data = a.metadata.data || a.name.split("/")[0];
        if (!rows[data]) {
          rows[data] = document.createElement("div");
          rows[data].className = "evalplot-row";
          rows[data].setAttribute("data-data", data);
          div.appendChild(rows[data]);
        }
        var box = document.createElement("div");
        box.className = "evalplot-box";
        box.setAttribute("data-artifact", a.name);
        rows[data].appendChild(box);
        a._box = box;
      });
      return Promise.all(arts.map(function (a) {
        return api("/api/artifacts/" + a.id).then(function (doc) {
          if (myView !== view) return;
          AT.guard(a._box, a.name, function () { AT.evalPlot(a._box, doc); });
        }).catch(function (err) { a._box.innerHTML = '<p class="panel-error">' + esc(a.name) + ": " + esc(err.message) + "</p>"; });
      }));
    }
    function loadCharts(divId, keys, keep) {
      return api(base + "/metrics?points=2000&keys=" + keys.map(encodeURIComponent).join(",")).then(function (m) {
        if (myView !== view) return;
        return panel(divId, "charts", function () {
          var p = AT.metricPanel(document.getElementById(divId), [{id: run.id, name: run.name, start_time: run.start_time, metrics: m}], keys);
          keep(p); return p.ready;
        });
      }).catch(function (err) { var d = document.getElementById(divId); if (d) d.innerHTML = '<p class="panel-error">' + esc(err.message) + "</p>"; });
    }
    function drawStatus() {
      var r = run, stats = r.metric_stats || {}, step = null;
      Object.keys(stats).forEach(function (k) { if (k.indexOf("system/") !== 0 && stats[k].last_step !== null && (step === null || stats[k].last_step > step)) step = stats[k].last_step; });
      var live = r.status === "running";
      var elapsed = live ? Date.now() / 1000 - r.start_time : r.duration;
      document.getElementById("status-line").innerHTML = '<span id="run-status">' + status(r.status) + "</span> · experiment <b>" + esc(r.experiment) + "</b> · started " +
        esc(when(r.start_time)) + " UTC · " + (live ? "running for " : "took ") + '<span id="run-duration">' + esc(dur(elapsed)) + "</span>" +
        (step !== null ? " · " + (live ? "at step " : "last step ") + esc(step) : "") +
        (r.host ? ' · <span class="muted">' + esc(r.host) + (r.pid ? " pid " + esc(r.pid) : "") + "</span>" : "") +
        (r.parent_id ? ' · parent <a href="#/run/' + esc(r.parent_id) + '">' + esc(r.parent_id.slice(0, 8)) + "</a>" : "");
    }
    function drawSummary(stats, single) {
      var keys = Object.keys(stats).filter(function (k) { return k.indexOf("system/") !== 0; });
      var div = document.getElementById("run-summary");
      if (!keys.length) { div.innerHTML = '<p class="muted">no metrics</p>'; return; }
      var one = single.filter(function (k) { return k.indexOf("system/") !== 0; });
      var many = keys.filter(function (k) { return one.indexOf(k) < 0 && k.indexOf("grad_norm/") !== 0; });
      div.innerHTML = (one.length ? '<table class="kv" id="single-metrics"><tbody>' + one.map(function (k) {
          return "<tr><th>" + esc(k) + '</th><td class="num">' + esc(fmt(stats[k].last)) + "</td></tr>"; }).join("") + "</tbody></table>" : "") +
        (many.length ? '<table id="series-metrics"><thead><tr><th>series</th><th class="num">last</th><th class="num">min</th><th class="num">max</th><th class="num">points</th><th class="num">last step</th></tr></thead><tbody>' +
          many.map(function (k) { var s = stats[k];
            return "<tr><td>" + esc(k) + '</td><td class="num">' + esc(fmt(s.last)) + '</td><td class="num">' + esc(fmt(s.min)) + '</td><td class="num">' + esc(fmt(s.max)) +
              '</td><td class="num">' + esc(s.count) + '</td><td class="num">' + esc(fmt(s.last_step)) + "</td></tr>"; }).join("") + "</tbody></table>" : "");
    }
    function post(what, body) {
      return api(base + "/" + what, body);
    }
    function drawTags(errorText) {
      var tags = run.tags || {};
      document.getElementById("tags-box").innerHTML = '<span class="label">tags</span> ' + Object.keys(tags).map(function (k) {
        return '<span class="chip" data-key="' + esc(k) + '">' + esc(k) + (tags[k] !== "" ? "=" + esc(tags[k]) : "") +
          ' <button class="chip-x" data-key="' + esc(k) + '" title="remove this tag">×</button></span>'; }).join(" ") +
        ' <form id="tag-form" class="inline"><input id="tag-input" placeholder="key=value" size="18"> <button type="submit">add tag</button></form>' +
        (errorText ? ' <span class="inline-error">' + esc(errorText) + "</span>" : "");
    }
    function drawNote(editing, errorText) {
      var box = document.getElementById("note-box");
      if (editing) {
        box.innerHTML = '<span class="label">note</span><textarea id="note-text" rows="6" placeholder="Markdown: **bold**, *italic*, `code`, - lists, [links](https://…)">' + esc(run.note || "") + "</textarea>" +
          '<div><button id="note-save">save note</button> <button id="note-cancel">cancel</button>' + (errorText ? ' <span class="inline-error">' + esc(errorText) + "</span>" : "") + "</div>";
        document.getElementById("note-text").focus();
      } else {
        box.innerHTML = '<span class="label">note</span> ' + (run.note ? '<div class="note" id="note-view">' + AT.markdown(run.note) + "</div>" : '<span class="muted">none</span>') +
          ' <button id="note-edit" class="small">' + (run.note ? "edit note" : "add a note") + "</button>";
      }
    }
    function drawArtifacts() {
      var arts = run.artifacts || [];
      var div = document.getElementById("run-artifacts");
      if (!arts.length) { div.innerHTML = '<p class="muted">none</p>'; return; }
      div.innerHTML = '<table id="artifacts-table"><thead><tr><th>name</th><th>kind</th><th class="num">step</th><th class="num">bytes</th><th>sha256</th><th></th><th>metadata</th></tr></thead><tbody>' +
        arts.map(function (a) {
          var dl = a.deleted ? '<span class="muted">deleted</span>' : a.stored ? '<a class="download" href="/api/artifacts/' + a.id + '">download</a>' :
            '<a class="download" href="' + base + "/artifacts/" + a.id + '/file" title="kept by reference: served while the file exists and matches its sha256">download</a> <span class="muted">(reference)</span>';
          return '<tr data-artifact="' + a.id + '"><td>' + esc(a.name) + "</td><td>" + esc(a.kind) + '</td><td class="num">' + esc(fmt(a.step)) + '</td><td class="num">' + esc(fmt(a.size)) +
            '</td><td class="mono">' + esc((a.sha256 || "").slice(0, 12)) + "</td><td>" + (a.preview ? '<button class="preview" data-id="' + a.id + '">preview</button> ' : "") + dl +
            '</td><td class="meta">' + artifactMeta(a.metadata || {}) + "</td></tr>";
        }).join("") + "</tbody></table>";
    }
    // a model's signature in one line, its input example as a row count; the rest as JSON
    function schemaText(x) {
      if (!x) return "?";
      if (x.columns) return x.columns.slice(0, 8).map(function (c) { return (c.name == null ? "" : c.name + " ") + (c.dtype || "?"); }).join(", ") +
        (x.columns.length > 8 ? ", … (" + x.n_columns + " columns)" : "");
      if (x.fields) return "{" + Object.keys(x.fields).map(function (k) { return k + ": " + schemaText(x.fields[k]); }).join("; ") + "}";
      if (x.items) return "(" + x.items.map(schemaText).join("; ") + ")";
      return (x.shape ? "[" + x.shape.join(", ") + "] " : "") + (x.dtype || "");
    }
    function artifactMeta(m) {
      var rest = {}, out = "";
      Object.keys(m).forEach(function (k) { if (k !== "signature" && k !== "input_example") rest[k] = m[k]; });
      if (m.signature) out += '<div class="signature">signature: ' + esc(schemaText(m.signature.inputs)) + " → " + esc(schemaText(m.signature.outputs)) + "</div>";
      if (m.input_example) out += '<div class="muted">input example: ' + esc(String(m.input_example.rows)) + " rows</div>";
      return out + esc(Object.keys(rest).length ? JSON.stringify(rest) : "");
    }
    function preview(aid) {
      var box = document.getElementById("artifact-preview");
      box.innerHTML = '<p class="muted">loading preview…</p>';
      var a = (run.artifacts || []).filter(function (x) { return String(x.id) === String(aid); })[0] || {name: ""};
      api(base + "/artifacts/" + aid + "/preview").then(function (p) {
        var head = '<div class="preview-head"><b>' + esc(a.name) + '</b> <button id="preview-close" class="small">close</button></div>';
        if (p.kind === "image") {
          box.innerHTML = head + '<img id="preview-img" alt="' + esc(a.name) + '">';
          document.getElementById("preview-img").src = p.src;
        } else if (p.kind === "table") {
          box.innerHTML = head + '<div class="table-wrap"><table id="preview-table"><thead><tr>' + p.header.map(function (h) { return "<th>" + esc(h) + "</th>"; }).join("") +
            "</tr></thead><tbody>" + p.rows.map(function (row) { return "<tr>" + row.map(function (c) { return "<td>" + esc(c) + "</td>"; }).join("") + "</tr>"; }).join("") +
            "</tbody></table></div>" + (p.truncated ? '<p class="muted">first rows only</p>' : "");
        } else if (p.kind === "text") {
          box.innerHTML = head + (p.message ? '<p class="muted">' + esc(p.message) + "</p>" : "") + '<pre id="preview-text">' + esc(p.text) + "</pre>";
        } else {
          box.innerHTML = head + '<p class="muted">' + esc(p.message || "no preview") + "</p>";
        }
      }).catch(function (err) { box.innerHTML = '<p class="panel-error">preview failed: ' + esc(err.message) + "</p>"; });
    }
    host.addEventListener("click", function (e) {
      var t = e.target;
      if (t.classList.contains("preview")) { preview(t.getAttribute("data-id")); return; }
      if (t.id === "preview-close") { document.getElementById("artifact-preview").innerHTML = ""; return; }
      if (t.classList.contains("chip-x")) {
        post("tags", {tags: {}, remove: [t.getAttribute("data-key")]}).then(function (res) { run.tags = res.tags; drawTags(); })
          .catch(function (err) { drawTags(err.message); });
        return;
      }
      if (t.id === "note-edit") { drawNote(true); return; }
      if (t.id === "note-cancel") { drawNote(false); return; }
      if (t.id === "note-save") {
        post("note", {note: document.getElementById("note-text").value}).then(function (res) { run.note = res.note; drawNote(false); })
          .catch(function (err) { drawNote(true, err.message); });
        return;
      }
      if (t.id === "rename") {
        var h = document.getElementById("run-name");
        h.innerHTML = '<form id="rename-form" class="inline"><input id="name-input" size="30" value="' + esc(run.name) + '"> <button type="submit">save</button> <button type="button" id="rename-cancel">cancel</button></form>';
        document.getElementById("name-input").select();
        return;
      }
      if (t.id === "rename-cancel") { resetName(); }
    });
    function resetName(errorText) {
      document.getElementById("run-name").innerHTML = '<span class="name-text">' + esc(run.name) + '</span> <button id="rename" class="small" title="rename">rename</button>' +
        (errorText ? ' <span class="inline-error">' + esc(errorText) + "</span>" : "");
    }
    host.addEventListener("submit", function (e) {
      e.preventDefault();
      if (e.target.id === "tag-form") {
        var text = document.getElementById("tag-input").value, i = text.indexOf("=");
        var key = (i >= 0 ? text.slice(0, i) : text).trim(), value = i >= 0 ? text.slice(i + 1).trim() : "";
        if (!key) return;
        var tags = {}; tags[key] = value;
        post("tags", {tags: tags}).then(function (res) { run.tags = res.tags; drawTags(); }).catch(function (err) { drawTags(err.message); });
      } else if (e.target.id === "rename-form") {
        post("name", {name: document.getElementById("name-input").value}).then(function (res) { run.name = res.name; resetName(); })
          .catch(function (err) { resetName(err.message); });
      }
    });
    function schedule() {
      var live = run.status === "running";
      document.getElementById("live").textContent = live ? "live: refreshing every 2 s" : "";
      if (live) poll(refresh, 2000);
    }
    function refresh() {
      api(base).then(function (r) {
        if (myView !== view) return;
        var keysBefore = Object.keys(run.metric_stats || {}).join(",");
        r.tags = run.tags; r.note = run.note;  /* keep edits in progress */
        run = r;
        drawStatus();
        var stats = r.metric_stats || {};
        drawSummary(stats, Object.keys(stats).filter(function (k) { return stats[k].count <= 1; }));
        var split = AT.splitKeys(seriesKeys(stats));
        var curves = split.train.filter(function (k) { return k.indexOf("grad_norm/") !== 0; });
        if (Object.keys(stats).join(",") !== keysBefore && !charts && curves.length) { return first(); }
        var jobs = [];
        [[charts, curves], [system, split.system]].forEach(function (pair) {
          if (!pair[0] || !pair[1].length) return;
          jobs.push(api(base + "/metrics?points=2000&keys=" + pair[1].map(encodeURIComponent).join(",")).then(function (m) {
            if (myView !== view) return;
            return pair[0].update([{id: run.id, name: run.name, start_time: run.start_time, metrics: m}], pair[1]);
          }));
        });
        return Promise.all(jobs);
      }).then(schedule, function () { schedule(); });
    }
    first().catch(showError);
  }

  /* the 'why A and B differ' tables (autotrack diff) */
  function diffTables(diff) {
    var out = "";
    function part(title, p) {
      if (!p) return;
      var rows = "";
      ["changed", "upgraded", "downgraded"].forEach(function (kind) {
        Object.keys(p[kind] || {}).forEach(function (k) { rows += "<tr><td>" + esc(k) + (kind !== "changed" ? " (" + kind + ")" : "") + "</td><td>" + esc(fmt(p[kind][k][0])) + "</td><td>" + esc(fmt(p[kind][k][1])) + "</td></tr>"; });
      });
      Object.keys(p.added || {}).forEach(function (k) { rows += "<tr><td>" + esc(k) + " (added)</td><td></td><td>" + esc(fmt(p.added[k])) + "</td></tr>"; });
      Object.keys(p.removed || {}).forEach(function (k) { rows += "<tr><td>" + esc(k) + " (removed)</td><td>" + esc(fmt(p.removed[k])) + "</td><td></td></tr>"; });
      if (rows) out += "<h3>" + esc(title) + "</h3><table><thead><tr><th></th><th>A</th><th>B</th></tr></thead><tbody>" + rows + "</tbody></table>";
    }
    part("params", diff.params);
    if (diff.metrics) {
      var rows = Object.keys(diff.metrics).filter(function (k) { return k !== "only_in_a" && k !== "only_in_b"; }).map(function (k) {
        var m = diff.metrics[k];
        return "<tr><td>" + esc(k) + " (" + m.goal + ")</td><td>" + esc(fmt(m.final[0])) + "</td><td>" + esc(fmt(m.final[1])) + "</td><td>" + esc(fmt(m.final[2])) +
          "</td><td>" + esc(fmt(m.best[0])) + "</td><td>" + esc(fmt(m.best[1])) + "</td><td>" + esc(fmt(m.best[2])) + "</td></tr>"; }).join("");
      if (rows) out += "<h3>metrics</h3><table><thead><tr><th></th><th>final A</th><th>final B</th><th>Δ</th><th>best A</th><th>best B</th><th>Δ</th></tr></thead><tbody>" + rows + "</tbody></table>";
    }
    if (diff.code) {
      var c = diff.code, text = "";
      Object.keys(c).forEach(function (k) { if (["patch", "scripts", "other"].indexOf(k) < 0) text += k + ": " + fmt(c[k][0]) + "  →  " + fmt(c[k][1]) + "\n"; });
      if (c.patch) text += "\nuncommitted changes differ:\n" + c.patch;
      Object.keys(c.scripts || {}).forEach(function (k) { text += "\nentry script " + k + " differs:\n" + c.scripts[k]; });
      out += "<h3>code</h3><pre>" + esc(text) + "</pre>";
    }
    ["packages", "hardware", "environment", "seeds", "data", "tags", "system_metrics"].forEach(function (s) { part(s, diff[s]); });
    return out || "<p>No differences.</p>";
  }

  /* ---------------- compare ---------------- */
  var MANY = 20;  /* more runs than this (a study's trials): tables a row per run, in a scrolling box */
  function machineTable(runs) {
    var rows = [];
    runs.forEach(function (r) { Object.keys(r.machine || {}).forEach(function (k) { if (rows.indexOf(k) < 0) rows.push(k); }); });
    if (!rows.length) return '<p class="muted">not captured</p>';
    if (runs.length > MANY) {  /* a column per run does not read: each row's distinct values, with how many runs have each */
      return '<table id="machine-table"><thead><tr><th></th><th>values (runs)</th></tr></thead><tbody>' + rows.map(function (k) {
        var counts = {};
        runs.forEach(function (r) { var v = (r.machine || {})[k] || "not captured"; counts[v] = (counts[v] || 0) + 1; });
        return "<tr><td>" + esc(k) + "</td><td>" + Object.keys(counts).sort(function (a, b) { return counts[b] - counts[a]; }).map(function (v) {
          return esc(v) + ' <span class="muted">(' + counts[v] + ")</span>"; }).join("; ") + "</td></tr>"; }).join("") + "</tbody></table>";
    }
    return '<table id="machine-table"><thead><tr><th></th>' + runs.map(function (r) { return "<th>" + esc(r.name) + "</th>"; }).join("") + "</tr></thead><tbody>" +
      rows.map(function (k) { return "<tr><td>" + esc(k) + "</td>" + runs.map(function (r) { return "<td>" + esc((r.machine || {})[k] || "") + "</td>"; }).join("") + "</tr>"; }).join("") +
      "</tbody></table>";
  }

  /* sel: {ids: [...]} (runs picked in the table) or {parent: ID} (a study's or a search's trials) */
  function comparePage(sel, keysFromUrl) {
    var myView = view, data = null, brushed = null, mpanel = null, spanel = null;
    main.setAttribute("data-view", "compare");
    main.innerHTML = '<div class="view"><p class="muted">loading…</p></div>';
    var host = main.firstElementChild;
    function url(keys, extra) {
      return "/api/compare?" + (sel.parent ? "parent=" + encodeURIComponent(sel.parent) : "ids=" + sel.ids.map(encodeURIComponent).join(",")) +
        (keys ? "&keys=" + keys.map(encodeURIComponent).join(",") : "") + (extra || "");
    }
    function selfHash() { return sel.parent ? "#/trials/" + sel.parent : "#/compare/" + sel.ids.join(","); }
    api(url(keysFromUrl)).then(function (d) {
      if (myView !== view) return;
      data = d;
      var runs = d.runs;
      runs.forEach(function (r) { statusOf[r.id] = r.status; });
      var colorIdx = {};
      runs.forEach(function (r, i) { colorIdx[r.id] = i; });
      function colorOf(id) { return colorIdx[id]; }
      var allKeys = {}, sysKeys = {};
      runs.forEach(function (r) { Object.keys(r.metric_stats || {}).forEach(function (k) { (k.indexOf("system/") === 0 ? sysKeys : allKeys)[k] = (allKeys[k] || 0) + 1; }); });
      var mkeys = AT.splitKeys(Object.keys(allKeys)).train;
      var chosen = d.keys.slice();
      var pcDefault = ["optuna/value", "cv/mean_test_score", "val/loss", "train/loss"].filter(function (k) { return allKeys[k]; })[0] || mkeys[0] || "";
      var varying = AT.varyingParams(runs);
      host.innerHTML =
        (sel.parent ? '<h1>Comparing ' + runs.length + ' trials <a class="small-link" href="#/run/' + esc(sel.parent) + '">back to the search</a></h1>'
          : '<h1>Comparing ' + runs.length + ' runs <a class="small-link" href="#/">back to runs</a></h1>') +
        '<div id="cmp-runs"></div>' +
        '<h2>Metrics</h2><details id="metric-picker" class="picker"><summary>choose metrics (' + chosen.length + " of " + mkeys.length + ')</summary><div class="picker-body">' +
        '<input id="metric-filter" placeholder="find a metric"><div class="picker-list">' + mkeys.map(function (k) {
          return '<label><input type="checkbox" data-key="' + esc(k) + '"' + (chosen.indexOf(k) >= 0 ? " checked" : "") + "> " + esc(k) + ' <span class="muted">' + allKeys[k] + "/" + runs.length + "</span></label>"; }).join("") +
        "</div></div></details>" +
        '<div id="cmp-metrics"></div>' +
        (Object.keys(sysKeys).length ? '<details id="cmp-system-wrap"><summary>system metrics (' + Object.keys(sysKeys).length + ')</summary><div id="cmp-system"></div></details>' : "") +
        '<h2>Params against a metric</h2><div class="controls"><label>metric <select id="pc-metric">' + mkeys.map(function (k) {
          return "<option" + (k === pcDefault ? " selected" : "") + ">" + esc(k) + "</option>"; }).join("") + "</select></label> " +
        '<span class="muted">drag along an axis to keep the runs in a range (the runs table above narrows); click an axis to clear</span></div>' +
        '<div id="cmp-parcoords" class="wide"></div>' +
        '<div class="two-col"><section><h3>param vs metric</h3><div class="controls"><label>param <select id="sc-param">' + varying.map(function (k) { return "<option>" + esc(k) + "</option>"; }).join("") +
        '</select></label></div><div id="cmp-scatter"></div></section><section><h3>parameter importance</h3><div id="cmp-importance"></div></section></div>' +
        '<h2>Param diff</h2><label><input type="checkbox" id="hide-equal" checked> hide params that are the same in every run</label><div id="cmp-diff"></div>' +
        "<h2>Hardware and environment</h2><div id=\"cmp-machine\"></div>" +
        (runs.length === 2 ? '<h2>Why A and B differ</h2><div id="cmp-why"></div>' : "");
      function drawRuns() {
        var show = chosen.slice(0, 6);
        var visible = runs.filter(function (r) { return !brushed || brushed.indexOf(r.id) >= 0; });
        document.getElementById("cmp-runs").innerHTML = '<p class="muted" id="cmp-count">' + (brushed ? "showing " + visible.length + " of " + runs.length + " runs (brushed in the parallel coordinates)" : runs.length + " runs") + "</p>" +
          '<div class="table-wrap' + (runs.length > MANY ? " tall" : "") + '"><table id="compare-table"><thead><tr><th>run</th><th>experiment</th><th>status</th>' +
          show.map(function (k) { return '<th class="num">' + esc(k) + " (last)</th>"; }).join("") + "</tr></thead><tbody>" +
          visible.map(function (r) {
            var ci = colorOf(r.id);
            return '<tr data-id="' + esc(r.id) + '"><td class="name"><span class="sw' + (AT.dash(ci) ? " dashed" : "") + '" style="background:' + AT.color(ci) + '"></span><a href="#/run/' + esc(r.id) + '">' + esc(r.name) +
              '</a> <span class="muted id">' + esc(r.id.slice(0, 8)) + "</span></td><td>" + esc(r.experiment) + "</td><td>" + status(r.status) + "</td>" +
              show.map(function (k) { return '<td class="num">' + esc(fmt((r.summary || {})[k])) + "</td>"; }).join("") + "</tr>"; }).join("") + "</tbody></table></div>";
      }
      function drawDiff() {
        var names = {};
        runs.forEach(function (r) { Object.keys(r.params || {}).forEach(function (k) { names[k] = 1; }); });
        var hide = document.getElementById("hide-equal").checked;
        var keys = Object.keys(names).sort().filter(function (k) { return !hide || varying.indexOf(k) >= 0; });
        var same = Object.keys(names).length - varying.length;
        if (runs.length > MANY && keys.length) {  /* many runs (a study's trials): a row per run, a column per param */
          document.getElementById("cmp-diff").innerHTML = '<div class="table-wrap tall"><table id="param-diff"><thead><tr><th>run</th>' +
            keys.map(function (k) { return '<th class="' + (varying.indexOf(k) >= 0 ? "differs" : "") + '">' + esc(k) + "</th>"; }).join("") + "</tr></thead><tbody>" +
            runs.map(function (r) { return '<tr><td><a href="#/run/' + esc(r.id) + '">' + esc(r.name) + "</a></td>" + keys.map(function (k) {
              var has = r.params && Object.prototype.hasOwnProperty.call(r.params, k);
              return '<td class="' + (has ? "" : "missing") + '">' + (has ? esc(fmt(r.params[k])) : "") + "</td>"; }).join("") + "</tr>"; }).join("") +
            "</tbody></table></div>" + (hide && same ? '<p class="muted">' + same + " params are the same in every run.</p>" : "");
          return;
        }
        document.getElementById("cmp-diff").innerHTML = (keys.length ? '<div class="table-wrap"><table id="param-diff"><thead><tr><th>param</th>' + runs.map(function (r) { return "<th>" + esc(r.name) + "</th>"; }).join("") + "</tr></thead><tbody>" +
          keys.map(function (k) { return '<tr class="' + (varying.indexOf(k) >= 0 ? "differs" : "") + '"><td>' + esc(k) + "</td>" + runs.map(function (r) {
            var has = r.params && Object.prototype.hasOwnProperty.call(r.params, k);
            return '<td class="' + (has ? "" : "missing") + '" title="' + (has ? esc(fmt(r.params[k])) : "not set in this run") + '">' + (has ? esc(fmt(r.params[k])) : "") + "</td>"; }).join("") + "</tr>"; }).join("") +
          "</tbody></table></div>" : '<p class="muted">No param differs.</p>') + (hide && same ? '<p class="muted">' + same + " params are the same in every run.</p>" : "");
      }
      function drawPc() {
        var metric = document.getElementById("pc-metric").value;
        panel("cmp-parcoords", "parallel coordinates", function () {
          if (!metric) { document.getElementById("cmp-parcoords").innerHTML = '<p class="muted">no metrics</p>'; return; }
          AT.parcoords(document.getElementById("cmp-parcoords"), runs, metric, {onBrush: function (keep) { brushed = keep; drawRuns(); }});
        });
        brushed = null; drawRuns();
        drawScatter();
        panel("cmp-importance", "parameter importance", function () { AT.importanceTable(document.getElementById("cmp-importance"), runs, metric); });
      }
      function drawScatter() {
        var metric = document.getElementById("pc-metric").value, sel = document.getElementById("sc-param");
        if (!sel.getAttribute("data-touched") && metric) {
          var top = AT.importance(runs, metric).filter(function (r) { return r.numeric && r.score !== null; })[0];
          if (top) sel.value = top.param;
        }
        var param = sel.value;
        panel("cmp-scatter", "scatter", function () {
          if (!param || !metric) { document.getElementById("cmp-scatter").innerHTML = '<p class="muted">no param differs</p>'; return; }
          AT.scatter(document.getElementById("cmp-scatter"), runs, param, metric, {colorOf: colorOf});
        });
      }
      panel("cmp-runs", "runs table", drawRuns);
      var waits = [];
      panel("cmp-metrics", "charts", function () {
        if (!chosen.length) { document.getElementById("cmp-metrics").innerHTML = '<p class="muted">no metric with more than one point; choose one above</p>'; return; }
        mpanel = AT.metricPanel(document.getElementById("cmp-metrics"), runs, chosen, {colorOf: colorOf});
        waits.push(mpanel.ready);
      });
      panel("cmp-diff", "param diff", drawDiff);
      panel("cmp-machine", "hardware", function () { document.getElementById("cmp-machine").innerHTML = machineTable(runs); });
      drawPc();
      if (runs.length === 2) panel("cmp-why", "diff", function () {
        document.getElementById("cmp-why").innerHTML = d.diff ? diffTables(d.diff) : '<p class="panel-error">' + esc(d.diff_error || "no diff") + "</p>";
      });
      document.getElementById("hide-equal").addEventListener("change", function () { panel("cmp-diff", "param diff", drawDiff); });
      document.getElementById("pc-metric").addEventListener("change", drawPc);
      document.getElementById("sc-param").addEventListener("change", function (e) { e.target.setAttribute("data-touched", "1"); drawScatter(); });
      document.getElementById("metric-filter").addEventListener("input", function (e) {
        var f = e.target.value.toLowerCase();
        Array.prototype.forEach.call(host.querySelectorAll("#metric-picker .picker-list label"), function (l) {
          l.style.display = l.textContent.toLowerCase().indexOf(f) >= 0 ? "" : "none"; });
      });
      document.getElementById("metric-picker").addEventListener("change", function (e) {
        var k = e.target.getAttribute("data-key"); if (!k) return;
        chosen = chosen.filter(function (x) { return x !== k; });
        if (e.target.checked) chosen.push(k);
        chosen = AT.splitKeys(chosen).train;
        host.querySelector("#metric-picker summary").textContent = "choose metrics (" + chosen.length + " of " + mkeys.length + ")";
        history.replaceState(null, "", selfHash() + "?keys=" + joinList(chosen));
        document.body.removeAttribute("data-ready");
        api(url(chosen, "&diff=0")).then(function (d2) {
          if (myView !== view) return;
          d2.runs.forEach(function (r2, i) { runs[i].metrics = r2.metrics; });
          if (mpanel) return mpanel.update(runs, chosen);
          mpanel = AT.metricPanel(document.getElementById("cmp-metrics"), runs, chosen, {colorOf: colorOf});
          return mpanel.ready;
        }).then(function () { drawRuns(); ready("compare"); }).catch(function (err) {
          document.getElementById("cmp-metrics").innerHTML = '<p class="panel-error">' + esc(err.message) + "</p>"; ready("compare"); });
      });
      var sysWrap = document.getElementById("cmp-system-wrap");
      if (sysWrap) sysWrap.addEventListener("toggle", function () {
        if (!sysWrap.open || spanel) return;
        var sk = Object.keys(sysKeys).sort();
        api(url(sk, "&diff=0")).then(function (d3) {
          var sruns = runs.map(function (r, i) { return Object.assign({}, r, {metrics: d3.runs[i].metrics}); });
          spanel = panel("cmp-system", "system charts", function () { return AT.metricPanel(document.getElementById("cmp-system"), sruns, sk, {colorOf: colorOf}); });
        }).catch(function (err) { document.getElementById("cmp-system").innerHTML = '<p class="panel-error">' + esc(err.message) + "</p>"; });
      });
      return Promise.all(waits).then(function () { ready("compare"); });
    }).catch(showError);
  }

  /* -- the model registry: #/models and #/models/NAME ------------------------------------------ */
  function bytes(n) { return n == null ? "" : n < 1024 ? n + " B" : n < 1048576 ? (n / 1024).toFixed(1) + " KB" : (n / 1048576).toFixed(1) + " MB"; }
  function aliasBadges(aliases) {
    return (aliases || []).map(function (a) { return '<span class="badge alias">@' + esc(a) + "</span>"; }).join(" ");
  }
  function modelHref(name) { return "#/models/" + encodeURIComponent(name); }

  function modelsPage() {
    main.setAttribute("data-view", "models");
    main.innerHTML = '<div class="view"><h2>Registered models</h2><div id="models-list">loading…</div></div>';
    return api("/api/models").then(function (data) {
      panel("models-list", "models", function () {
        var div = document.getElementById("models-list");
        if (!data.models.length) {
          div.innerHTML = '<p class="muted">No registered models. Register one with <code>autotrack.register_model(name, run=..., artifact=...)</code>, ' +
            "<code>Tracked(est, register_as=...)</code> or a callback's <code>register_as</code>.</p>";
          return;
        }
        div.innerHTML = '<table id="models-table"><thead><tr><th>name</th><th class="num">versions</th><th>latest</th><th>aliases</th><th>framework</th><th>registered</th></tr></thead><tbody>' +
          data.models.map(function (m) {
            var aliases = Object.keys(m.aliases).sort().map(function (a) { return '<span class="badge alias">@' + esc(a) + " → v" + esc(m.aliases[a]) + "</span>"; }).join(" ");
            return '<tr data-name="' + esc(m.name) + '"><td><a href="' + modelHref(m.name) + '">' + esc(m.name) + '</a></td><td class="num">' + esc(m.versions) +
              "</td><td>v" + esc(m.latest.version) + "</td><td>" + aliases + "</td><td>" + esc(m.latest.framework) + "</td><td>" + esc(when(m.latest.created)) + "</td></tr>";
          }).join("") + "</tbody></table>";
      });
      ready("models");
    }).catch(showError);
  }

  function modelPage(name) {
    main.setAttribute("data-view", "model");
    main.innerHTML = '<div class="view">loading…</div>';
    return api("/api/models/" + encodeURIComponent(name)).then(function (m) {
      var aliases = Object.keys(m.aliases).sort();
      main.innerHTML = '<div class="view"><p><a href="#/models">models</a> /</p><h1>' + esc(m.name) + "</h1>" +
        '<p id="model-aliases">' + (aliases.length ? aliases.map(function (a) { return '<span class="badge alias">@' + esc(a) + " → v" + esc(m.aliases[a]) + "</span>"; }).join(" ")
          : '<span class="muted">no aliases</span>') + "</p>" +
        '<h2>Versions <span class="muted">' + m.versions.length + "</span></h2><div id=\"model-versions\"></div>" +
        '<h2>Alias history <span class="muted">append-only</span></h2><div id="model-history"></div>' +
        '<p class="muted help">Move an alias with <code>autotrack models alias ' + esc(m.name) + " ALIAS VERSION --reason ...</code>; go back with <code>autotrack models rollback " +
        esc(m.name) + " ALIAS</code>; compare two versions with <code>autotrack models diff " + esc(m.name) + " A B</code>.</p></div>";
      panel("model-versions", "versions", function () {
        document.getElementById("model-versions").innerHTML = '<table id="versions-table"><thead><tr><th>version</th><th>aliases</th><th>run</th><th>artifact</th><th>framework</th>' +
          '<th class="num">size</th><th>sha256</th><th>registered</th><th>by</th><th>description</th></tr></thead><tbody>' +
          m.versions.map(function (v) {
            var run = v.run_deleted ? '<span class="muted">deleted run ' + esc(v.run_id.slice(0, 8)) + "</span>"
              : '<a href="#/run/' + esc(v.run_id) + '">' + esc(v.run_name || v.run_id.slice(0, 8)) + "</a> " + (v.run_status ? status(v.run_status) : "");
            return '<tr data-version="' + esc(v.version) + '"><td>v' + esc(v.version) + "</td><td>" + aliasBadges(v.aliases) + "</td><td>" + run + "</td><td>" + esc(v.artifact) +
              "</td><td>" + esc(v.framework) + (v.format ? ' <span class="muted">' + esc(v.format) + "</span>" : "") + '</td><td class="num">' + esc(bytes(v.size)) +
              '</td><td><code>' + esc(v.sha256.slice(0, 12)) + "</code></td><td>" + esc(when(v.created)) + "</td><td>" + esc(v.user + "@" + v.host) + "</td><td>" + esc(v.description || "") + "</td></tr>";
          }).join("") + "</tbody></table>";
      });
      panel("model-history", "alias history", function () {
        var div = document.getElementById("model-history");
        if (!m.history.length) { div.innerHTML = '<p class="muted">No alias has been set yet.</p>'; return; }
        div.innerHTML = '<table id="history-table"><thead><tr><th>when</th><th>alias</th><th>move</th><th>action</th><th>by</th><th>reason</th></tr></thead><tbody>' +
          m.history.map(function (h) {
            return '<tr data-seq="' + esc(h.seq) + '"><td>' + esc(when(h.time)) + "</td><td>@" + esc(h.alias) + "</td><td>" + (h.from == null ? "—" : "v" + esc(h.from)) + " → v" + esc(h.to) +
              "</td><td>" + esc(h.action) + "</td><td>" + esc(h.user + "@" + h.host) + "</td><td>" + esc(h.reason || "") + "</td></tr>";
          }).join("") + "</tbody></table>";
      });
      ready("model");
    }).catch(showError);
  }

  function showError(err) {
    main.innerHTML = '<p class="panel-error">' + esc(err && err.message ? err.message : err) + '</p><p><a href="#/">back to runs</a></p>';
    ready("error");
  }

  var lastHref = null;
  function route() {
    lastHref = location.href;
    view++;
    clearTimeout(timer);
    document.body.removeAttribute("data-ready");
    document.getElementById("live").textContent = "";
    var h = location.hash.replace(/^#\/?/, ""), q = h.indexOf("?"), path = q >= 0 ? h.slice(0, q) : h;
    var m;
    if ((m = path.match(/^run\/([A-Za-z0-9_-]+)$/))) runPage(m[1]);
    else if (path === "models") modelsPage();
    else if ((m = path.match(/^models\/(.+)$/))) modelPage(decodeURIComponent(m[1]));
    else if ((m = path.match(/^compare\/([A-Za-z0-9_,-]+)$/))) {
      var keys = hashQuery().has("keys") ? splitList(hashQuery().get("keys")) : null;
      comparePage({ids: m[1].split(",").filter(Boolean)}, keys);
    } else if ((m = path.match(/^trials\/([A-Za-z0-9_-]+)$/))) {
      comparePage({parent: m[1]}, hashQuery().has("keys") ? splitList(hashQuery().get("keys")) : null);
    } else runsPage();
  }
  window.addEventListener("popstate", route);  /* back/forward, and links (Chrome fires popstate, then hashchange) */
  window.addEventListener("hashchange", function () { if (location.href !== lastHref) route(); });
  route();
})();
