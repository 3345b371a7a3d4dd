/* autotrack ui: runs table, run page, compare page. Hash routes: #/ , #/run/ID , #/compare/ID,ID,... */
(function () {
  "use strict";
  var esc = AT.esc, main = document.getElementById("main");
  var timer = null, view = 0;
  var state = {sort: "start_time", desc: true, search: "", experiment: "", status: "", selected: {}};

  /* plotly.js (3.5 MB) is loaded only when a page draws plots, so the runs table comes up at once */
  var plotlyLoading = null, prefetched = false;
  function needPlotly() {
    if (window.Plotly) return Promise.resolve();
    if (!plotlyLoading) {
      plotlyLoading = new Promise(function (resolve, reject) {
        var s = document.createElement("script");
        s.src = "/static/plotly.min.js";
        s.onload = resolve;
        s.onerror = function () { plotlyLoading = null; reject(new Error("could not load plotly.js")); };
        document.head.appendChild(s);
      });
    }
    return plotlyLoading;
  }

  function api(path) {
    return fetch(path, {headers: {"Accept": "application/json"}}).then(function (r) {
      if (!r.ok) return r.json().then(function (e) { throw new Error(e.error || r.statusText); });
      return r.json();
    });
  }
  function fmt(v) {
    if (v === null || v === undefined) return "";
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toPrecision(5).replace(/\.?0+$/, "");
    if (typeof v === "object") return JSON.stringify(v);
    return String(v);
  }
  function when(ts) { return ts ? new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19) : ""; }
  function dur(s) { return s === null || s === undefined ? "" : s < 120 ? s.toFixed(1) + " s" : (s / 60).toFixed(1) + " min"; }
  function status(s) { return '<span class="status-' + esc(s) + '">' + esc(s) + "</span>"; }
  function ready(name) { document.body.setAttribute("data-ready", name); }
  function poll(fn, ms) { clearTimeout(timer); var v = view; timer = setTimeout(function () { if (v === view) fn(); }, ms); }
  function kvTable(obj) {
    var keys = Object.keys(obj || {});
    if (!keys.length) return '<p class="muted">none</p>';
    return "<table><tbody>" + keys.map(function (k) {
      return "<tr><th>" + esc(k) + "</th><td>" + esc(fmt(obj[k])) + "</td></tr>"; }).join("") + "</tbody></table>";
  }

  /* ---------------- runs table ---------------- */
  function runsPage() {
    var myView = view;
    api("/api/runs").then(function (data) {
      if (myView !== view) return;
      var runs = data.runs;
      var metricCount = {}, paramVals = {};
      runs.forEach(function (r) {
        Object.keys(r.summary).forEach(function (k) { if (k.indexOf("system/") !== 0) metricCount[k] = (metricCount[k] || 0) + 1; });
        Object.keys(r.params).forEach(function (k) { (paramVals[k] = paramVals[k] || new Set()).add(JSON.stringify(r.params[k])); });
      });
      var mcols = Object.keys(metricCount).sort(function (a, b) { return metricCount[b] - metricCount[a] || (a < b ? -1 : 1); }).slice(0, 6);
      var pcols = Object.keys(paramVals).filter(function (k) { return paramVals[k].size > 1; }).sort().slice(0, 6);
      var exps = Array.from(new Set(runs.map(function (r) { return r.experiment; }))).sort();
      if (!document.getElementById("runs-table") || main.getAttribute("data-view") !== "runs") {
        main.setAttribute("data-view", "runs");
        main.innerHTML = '<div class="toolbar"><input id="search" type="search" placeholder="search name, id, params, tags" size="36">' +
          '<select id="exp"><option value="">all experiments</option></select>' +
          '<select id="status"><option value="">any status</option><option>running</option><option>finished</option>' +
          '<option>failed</option><option>killed</option><option>crashed</option></select>' +
          '<button id="compare" disabled>compare selected</button> <span id="count" class="muted"></span></div>' +
          '<table id="runs-table"><thead></thead><tbody></tbody></table>';
        var s = document.getElementById("search"); s.value = state.search;
        s.addEventListener("input", function () { state.search = s.value; draw(); });
        document.getElementById("exp").addEventListener("change", function (e) { state.experiment = e.target.value; draw(); });
        var st = document.getElementById("status"); st.value = state.status;
        st.addEventListener("change", function (e) { state.status = e.target.value; draw(); });
        document.getElementById("compare").addEventListener("click", function () {
          location.hash = "#/compare/" + Object.keys(state.selected).join(",");
        });
      }
      var expSel = document.getElementById("exp");
      expSel.innerHTML = '<option value="">all experiments</option>' + exps.map(function (e) {
        return "<option" + (e === state.experiment ? " selected" : "") + ">" + esc(e) + "</option>"; }).join("");
      var cols = [["name", "name"], ["experiment", "experiment"], ["status", "status"], ["start_time", "start (UTC)"], ["duration", "duration"]]
        .concat(mcols.map(function (k) { return ["m:" + k, k]; }), pcols.map(function (k) { return ["p:" + k, k]; }));
      function value(r, c) {
        if (c.indexOf("m:") === 0) return r.summary[c.slice(2)];
        if (c.indexOf("p:") === 0) return r.params[c.slice(2)];
        return r[c];
      }
      function draw() {
        var q = state.search.toLowerCase();
        var rows = runs.filter(function (r) {
          if (state.experiment && r.experiment !== state.experiment) return false;
          if (state.status && r.status !== state.status) return false;
          if (!q) return true;
          return (r.name + " " + r.id + " " + r.experiment + " " + JSON.stringify(r.params) + " " + JSON.stringify(r.tags)).toLowerCase().indexOf(q) >= 0;
        });
        rows.sort(function (a, b) {
          var x = value(a, state.sort), y = value(b, state.sort);
          if (x === y) return 0;
          if (x === undefined || x === null) return 1;
          if (y === undefined || y === null) return -1;
          var c = x < y ? -1 : 1;
          return state.desc ? -c : c;
        });
        var table = document.getElementById("runs-table");
        table.tHead.innerHTML = "<tr><th></th>" + cols.map(function (c) {
          var arrow = state.sort === c[0] ? (state.desc ? " ▼" : " ▲") : "";
          return '<th class="sortable" data-col="' + esc(c[0]) + '">' + esc(c[1]) + arrow + "</th>"; }).join("") + "</tr>";
        table.tBodies[0].innerHTML = rows.map(function (r) {
          return '<tr data-id="' + esc(r.id) + '"><td><input type="checkbox" class="sel" data-id="' + esc(r.id) + '"' +
            (state.selected[r.id] ? " checked" : "") + "></td>" +
            '<td><a href="#/run/' + esc(r.id) + '">' + esc(r.name) + '</a> <span class="muted">' + esc(r.id.slice(0, 8)) + "</span></td>" +
            "<td>" + esc(r.experiment) + "</td><td>" + status(r.status) + "</td><td>" + esc(when(r.start_time)) + "</td><td>" + esc(dur(r.duration)) + "</td>" +
            cols.slice(5).map(function (c) { return "<td>" + esc(fmt(value(r, c[0]))) + "</td>"; }).join("") + "</tr>";
        }).join("");
        document.getElementById("count").textContent = rows.length + " of " + runs.length + " runs";
        var n = Object.keys(state.selected).length;
        var btn = document.getElementById("compare");
        btn.disabled = n < 1; btn.textContent = "compare selected (" + n + ")";
      }
      var table = document.getElementById("runs-table");
      table.onclick = function (e) {
        var th = e.target.closest("th.sortable");
        if (th) {
          var c = th.getAttribute("data-col");
          if (state.sort === c) state.desc = !state.desc; else { state.sort = c; state.desc = false; }
          draw();
        }
      };
      table.onchange = function (e) {
        if (e.target.classList.contains("sel")) {
          var id = e.target.getAttribute("data-id");
          if (e.target.checked) state.selected[id] = true; else delete state.selected[id];
          draw();
        }
      };
      draw();
      ready("runs");
      if (!window.Plotly && !prefetched) { prefetched = true; fetch("/static/plotly.min.js").catch(function () {}); }  /* warm the cache only */
      var live = runs.some(function (r) { return r.status === "running"; });
      document.getElementById("live").textContent = live ? "live: refreshing every 5 s" : "";
      if (live) poll(runsPage, 5000);
    }).catch(showError);
  }

  /* ---------------- run page ---------------- */
  function runPage(id) {
    var myView = view, panel = null, system = null;
    function load(first) {
      return Promise.all([api("/api/runs/" + encodeURIComponent(id)), api("/api/runs/" + encodeURIComponent(id) + "/metrics?points=2000"), needPlotly()])
        .then(function (res) {
          if (myView !== view) return;
          var run = res[0]; run.metrics = res[1];
          var split = AT.splitKeys(Object.keys(run.metrics));
          if (first) {
            main.setAttribute("data-view", "run");
            var secs = Object.keys(run.sections || {}).map(function (name) {
              return '<details class="section"' + (name === "source" || name === "config" ? " open" : "") + "><summary>" + esc(name) +
                "</summary><pre>" + esc(JSON.stringify(run.sections[name], null, 2)) + "</pre></details>";
            }).join("") || '<p class="muted">no captured sections</p>';
            var arts = (run.artifacts || []).map(function (a) {
              var link = a.stored ? '<a href="/api/artifacts/' + a.id + '">' + esc(a.name) + "</a>" : esc(a.name) + ' <span class="muted">(reference, not stored)</span>';
              return "<tr><td>" + link + (a.deleted ? ' <span class="muted">(deleted)</span>' : "") + "</td><td>" + esc(a.kind) + "</td><td>" + esc(fmt(a.step)) +
                "</td><td>" + esc(fmt(a.size)) + "</td><td>" + esc((a.sha256 || "").slice(0, 12)) + "</td><td>" + esc(Object.keys(a.metadata || {}).length ? JSON.stringify(a.metadata) : "") + "</td></tr>";
            }).join("");
            var kids = (run.children || []).map(function (c) {
              return '<a href="#/run/' + esc(c.id) + '">' + esc(c.name) + "</a> (" + esc(c.status) + ")"; }).join(", ");
            main.innerHTML = "<h1>" + esc(run.name) + ' <span class="muted">' + esc(run.id) + "</span></h1>" +
              '<p>experiment <b>' + esc(run.experiment) + "</b> · <span id=\"run-status\">" + status(run.status) + "</span> · started " + esc(when(run.start_time)) +
              ' UTC · <span id="run-duration">' + esc(dur(run.duration)) + "</span>" +
              (run.parent_id ? ' · parent <a href="#/run/' + esc(run.parent_id) + '">' + esc(run.parent_id.slice(0, 8)) + "</a>" : "") + "</p>" +
              (kids ? "<p>children: " + kids + "</p>" : "") +
              (run.error ? "<h2>Error</h2><pre>" + esc((run.error.type || "") + ": " + (run.error.message || "") + "\n" + (run.error.traceback || "")) + "</pre>" : "") +
              '<h2>Metrics</h2><div id="run-metrics"></div><div id="run-system-wrap"><h2>System metrics</h2><div id="run-system"></div></div>' +
              '<h2>Summary</h2><div id="run-summary"></div><h2>Params</h2>' + kvTable(run.params) + "<h2>Tags</h2>" + kvTable(run.tags) +
              (run.machine ? "<h2>Machine</h2>" + kvTable(run.machine) : "") +
              "<h2>Captured sections</h2>" + secs +
              "<h2>Artifacts</h2>" + (arts ? "<table><thead><tr><th>name</th><th>kind</th><th>step</th><th>bytes</th><th>sha256</th><th>metadata</th></tr></thead><tbody>" + arts + "</tbody></table>" : '<p class="muted">none</p>');
            panel = AT.metricPanel(document.getElementById("run-metrics"), [run], split.train);
            if (split.system.length) system = AT.metricPanel(document.getElementById("run-system"), [run], split.system);
            else document.getElementById("run-system-wrap").style.display = "none";
            Promise.all([panel.ready, system ? system.ready : null]).then(function () { ready("run"); });
          } else {
            document.getElementById("run-status").innerHTML = status(run.status);
            document.getElementById("run-duration").textContent = dur(run.duration);
            panel.update([run]);
            if (system) system.update([run]);
          }
          var stats = run.metric_stats || {};
          document.getElementById("run-summary").innerHTML = Object.keys(stats).length ? "<table><thead><tr><th>metric</th><th>last</th><th>min</th><th>max</th><th>points</th><th>last step</th></tr></thead><tbody>" +
            Object.keys(stats).map(function (k) { var s = stats[k];
              return "<tr><td>" + esc(k) + "</td><td>" + esc(fmt(s.last)) + "</td><td>" + esc(fmt(s.min)) + "</td><td>" + esc(fmt(s.max)) + "</td><td>" + esc(s.count) + "</td><td>" + esc(fmt(s.last_step)) + "</td></tr>"; }).join("") +
            "</tbody></table>" : '<p class="muted">no metrics</p>';
          var live = run.status === "running";
          document.getElementById("live").textContent = live ? "live: refreshing every 2 s" : "";
          if (live) poll(function () { load(false); }, 2000);
        }).catch(showError);
    }
    main.innerHTML = "loading…";
    load(true);
  }

  /* ---------------- compare page ---------------- */
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

  /* Hardware and environment side by side: the rows the server derives from the typed sections
     (autotrack/_sections.py machine_summary), the same rows as the HTML report. */
  function machineTable(runs) {
    var rows = runs.length && runs[0].machine ? Object.keys(runs[0].machine) : [];
    if (!rows.length) return "";
    return '<h2>Hardware and environment</h2><table id="machine-table"><thead><tr><th></th>' +
      runs.map(function (r) { return "<th>" + esc(r.name) + "</th>"; }).join("") + "</tr></thead><tbody>" +
      rows.map(function (k) { return "<tr><td>" + esc(k) + "</td>" + runs.map(function (r) { return "<td>" + esc((r.machine || {})[k] || "") + "</td>"; }).join("") + "</tr>"; }).join("") +
      "</tbody></table>";
  }

  function comparePage(ids) {
    var myView = view;
    main.innerHTML = "loading…";
    Promise.all([api("/api/compare?ids=" + ids.map(encodeURIComponent).join(",")), needPlotly()]).then(function (res) {
      var data = res[0];
      if (myView !== view) return;
      main.setAttribute("data-view", "compare");
      var runs = data.runs, keys = {};
      runs.forEach(function (r) { Object.keys(r.metrics).forEach(function (k) { keys[k] = true; }); });
      var split = AT.splitKeys(Object.keys(keys));
      var mkeys = Object.keys(runs.reduce(function (a, r) { Object.keys(r.summary).forEach(function (k) { if (k.indexOf("system/") !== 0) a[k] = 1; }); return a; }, {})).sort();
      var pnames = Array.from(new Set([].concat.apply([], runs.map(function (r) { return Object.keys(r.params); })))).sort();
      var differing = pnames.filter(function (k) { return new Set(runs.map(function (r) { return JSON.stringify(r.params[k]); })).size > 1; });
      main.innerHTML = "<h1>Comparing " + runs.length + " runs</h1><table id=\"compare-table\"><thead><tr><th>run</th><th>experiment</th><th>status</th>" +
        mkeys.slice(0, 8).map(function (k) { return "<th>" + esc(k) + "</th>"; }).join("") + "</tr></thead><tbody>" +
        runs.map(function (r, i) { return '<tr><td><span style="color:' + AT.color(i) + '">■</span> <a href="#/run/' + esc(r.id) + '">' + esc(r.name) + "</a></td><td>" + esc(r.experiment) + "</td><td>" + status(r.status) + "</td>" +
          mkeys.slice(0, 8).map(function (k) { return "<td>" + esc(fmt(r.summary[k])) + "</td>"; }).join("") + "</tr>"; }).join("") + "</tbody></table>" +
        '<h2>Metrics</h2><div id="cmp-metrics"></div><div id="cmp-system-wrap"><h2>System metrics</h2><div id="cmp-system"></div></div>' +
        '<h2>Params against a metric</h2><label>metric <select id="pc-metric">' + mkeys.map(function (k) { return "<option>" + esc(k) + "</option>"; }).join("") +
        '</select></label><div id="cmp-parcoords" class="plot"></div>' +
        "<h2>Param diff</h2>" + (differing.length ? "<table><thead><tr><th>param</th>" + runs.map(function (r) { return "<th>" + esc(r.name) + "</th>"; }).join("") + "</tr></thead><tbody>" +
          differing.map(function (k) { return "<tr><td>" + esc(k) + "</td>" + runs.map(function (r) { return "<td>" + esc(fmt(r.params[k])) + "</td>"; }).join("") + "</tr>"; }).join("") + "</tbody></table>" : "<p>Same params.</p>") +
        machineTable(runs) +
        (data.diff ? "<h2>Why A and B differ</h2>" + diffTables(data.diff) : "");
      var p1 = AT.metricPanel(document.getElementById("cmp-metrics"), runs, split.train);
      var p2 = split.system.length ? AT.metricPanel(document.getElementById("cmp-system"), runs, split.system) : null;
      if (!p2) document.getElementById("cmp-system-wrap").style.display = "none";
      var sel = document.getElementById("pc-metric"), pc = document.getElementById("cmp-parcoords");
      var pre = mkeys.indexOf("val/loss") >= 0 ? "val/loss" : mkeys.indexOf("train/loss") >= 0 ? "train/loss" : mkeys[0];
      if (pre) sel.value = pre;
      function drawPc() { return sel.value && runs.length > 1 ? AT.parcoords(pc, runs, sel.value) : null; }
      sel.addEventListener("change", drawPc);
      Promise.all([p1.ready, p2 && p2.ready, drawPc()]).then(function () { ready("compare"); });
    }).catch(showError);
  }

  function showError(err) {
    main.innerHTML = '<p class="status-failed">' + esc(err && err.message ? err.message : err) + '</p><p><a href="#/">back to runs</a></p>';
    ready("error");
  }

  function route() {
    view++;
    clearTimeout(timer);
    document.body.removeAttribute("data-ready");
    document.getElementById("live").textContent = "";
    var h = location.hash.replace(/^#\/?/, "");
    var m;
    if ((m = h.match(/^run\/([A-Za-z0-9_-]+)$/))) runPage(m[1]);
    else if ((m = h.match(/^compare\/([A-Za-z0-9_,-]+)$/))) comparePage(m[1].split(",").filter(Boolean));
    else { main.removeAttribute("data-view"); runsPage(); }
  }
  window.addEventListener("hashchange", route);
  route();
})();
