/* autotrack charts: shared by the web UI and the self-contained HTML report. Needs uPlot (vendored).
   Everything here takes plain data; a missing param or metric is an empty value, never an error. */
(function (root) {
  "use strict";
  var AT = root.AT || (root.AT = {});

  /* 24 distinct colours (Kelly's set without white/black, plus four); past 24 the dash pattern changes */
  var PALETTE = ["#0067A5", "#F38400", "#008856", "#BE0032", "#875692", "#E68FAC", "#8DB600", "#882D17",
                 "#A1CAF1", "#F3C300", "#604E97", "#F99379", "#654522", "#DCD300", "#B3446C", "#2B3D26",
                 "#848482", "#C2B280", "#E25822", "#F6A600", "#17becf", "#1f77b4", "#9467bd", "#e377c2"];
  var DASHES = [null, [6, 3], [2, 2], [8, 3, 2, 3]];
  AT.color = function (i) { return PALETTE[i % PALETTE.length]; };
  AT.dash = function (i) { return DASHES[Math.floor(i / PALETTE.length) % DASHES.length]; };

  AT.esc = function (s) {
    return String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;"}[c];
    });
  };
  AT.fmt = function (v) {
    if (v === null || v === undefined) return "";
    if (typeof v === "number") {
      if (!isFinite(v)) return String(v);
      if (Number.isInteger(v)) return String(v);
      var a = Math.abs(v);
      if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3).replace(/\.?0+e/, "e");
      return v.toPrecision(5).replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "");
    }
    if (typeof v === "object") return JSON.stringify(v);
    return String(v);
  };
  AT.runLabel = function (run) { return run.name + " (" + run.id.slice(0, 6) + ")"; };

  AT.theme = function () {
    var cs = getComputedStyle(document.documentElement);
    function v(name, dflt) { return (cs.getPropertyValue(name) || "").trim() || dflt; }
    return {fg: v("--fg", "#222"), muted: v("--muted", "#777"), grid: v("--grid", "#e6e6e6"), bg: v("--bg", "#fff"),
            axis: v("--axis", "#999")};
  };

  /* one panel failing shows its own error; the rest of the page goes on */
  AT.guard = function (div, what, fn) {
    try { return fn(); }
    catch (err) {
      if (div) div.innerHTML = '<p class="panel-error">' + AT.esc(what) + " could not be drawn: " + AT.esc(err && err.message || err) + "</p>";
      if (root.console && console.warn) console.warn(what, err);
      return null;
    }
  };

  /* exponential moving average (TensorBoard style, debiased); nulls pass through */
  AT.ema = function (values, weight) {
    if (!weight) return values;
    var out = new Array(values.length), last = 0, n = 0;
    for (var i = 0; i < values.length; i++) {
      var v = values[i];
      if (v === null || v === undefined || !isFinite(v)) { out[i] = v; continue; }
      last = last * weight + (1 - weight) * v; n++;
      out[i] = last / (1 - Math.pow(weight, n));
    }
    return out;
  };

  function tick(v) { return v === null || v === undefined ? "" : AT.fmt(Math.abs(v) < 1e-12 ? 0 : +v.toPrecision(6)); }

  /* x of a series for an axis mode: step, rel (seconds since the run started), wall (epoch seconds) */
  function xsFor(run, m, mode) {
    if (mode === "step" || !m.times) return m.steps;
    if (mode === "wall") return m.times;
    var t0 = run.start_time || (m.times.length ? m.times[0] : 0);
    return m.times.map(function (t) { return t - t0; });
  }

  /* sorted, finite, strictly increasing x. Equal steps: the last value wins (a resumed run);
     equal times (points written in one batch carry one time): each kept, a microsecond apart. */
  function cleanXY(xs, ys, nudge) {
    var n = Math.min(xs.length, ys.length), sorted = true, i;
    for (i = 1; i < n; i++) if (!(xs[i] > xs[i - 1])) { sorted = false; break; }
    if (sorted) return [xs.slice(0, n), ys.slice(0, n)];
    var idx = [];
    for (i = 0; i < n; i++) if (xs[i] !== null && isFinite(xs[i])) idx.push(i);
    idx.sort(function (a, b) { return xs[a] - xs[b] || a - b; });
    var ox = [], oy = [];
    idx.forEach(function (j) {
      var last = ox.length ? ox[ox.length - 1] : null;
      if (last !== null && xs[j] <= last) {
        if (nudge) { ox.push(last + 1e-6); oy.push(ys[j]); } else oy[oy.length - 1] = ys[j];
      } else { ox.push(xs[j]); oy.push(ys[j]); }
    });
    return [ox, oy];
  }

  /* Runs grouped by the value of param `param` (runs without it form the group "(none)"), in
     first-seen order: [{label, value, runs: [...]}] */
  AT.groupRuns = function (runs, param) {
    var groups = [], byValue = {};
    runs.forEach(function (r) {
      var has = r.params && Object.prototype.hasOwnProperty.call(r.params, param);
      var v = has ? JSON.stringify(r.params[param]) : "(none)";
      if (!byValue[v]) { byValue[v] = {label: param + "=" + (has ? AT.fmt(r.params[param]) : "(none)"), value: v, runs: []}; groups.push(byValue[v]); }
      byValue[v].runs.push(r);
    });
    return groups;
  };

  /* Mean, min and max of a group's (smoothed) curves at each x. Steps align exactly; on a time
     axis the x range is cut into `bins` equal bins (runs never log at the same instant). */
  AT.groupStats = function (curves, mode, bins) {
    var table = {}, lo = Infinity, hi = -Infinity;
    if (mode !== "step") curves.forEach(function (c) { c[0].forEach(function (x) { if (x < lo) lo = x; if (x > hi) hi = x; }); });
    var width = mode !== "step" && hi > lo ? (hi - lo) / (bins || 400) : 0;
    curves.forEach(function (c) {
      var seen = {};
      for (var i = 0; i < c[0].length; i++) {
        var y = c[1][i];
        if (y === null || y === undefined || !isFinite(y)) continue;
        var x = width ? lo + (Math.floor((c[0][i] - lo) / width) + 0.5) * width : c[0][i];
        var cell = table[x] || (table[x] = {sum: 0, n: 0, min: Infinity, max: -Infinity, runs: 0});
        if (seen[x]) { cell.sum += y - seen[x].y; seen[x].y = y; } else { seen[x] = {y: y}; cell.sum += y; cell.n++; }
        if (y < cell.min) cell.min = y;
        if (y > cell.max) cell.max = y;
      }
    });
    var xs = Object.keys(table).map(Number).sort(function (a, b) { return a - b; });
    return {x: xs, mean: xs.map(function (x) { return table[x].sum / table[x].n; }),
            min: xs.map(function (x) { return table[x].min; }), max: xs.map(function (x) { return table[x].max; }),
            n: xs.map(function (x) { return table[x].n; })};
  };

  function alpha(color, a) {
    var m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(color);
    return m ? "rgba(" + parseInt(m[1], 16) + "," + parseInt(m[2], 16) + "," + parseInt(m[3], 16) + "," + a + ")" : color;
  }

  /* One chart: `key` of every run that has it. runs: [{id, name, start_time, metrics: {key: {steps, values, times}}}]
     opts: {xMode, log, smooth, hidden: {runId: true}, colorOf(runId) -> index, width, height,
            groupBy: a param (one mean line per value with its min-max band instead of one line per run)} */
  AT.lineChart = function (div, runs, key, opts) {
    opts = opts || {};
    var th = AT.theme(), mode = opts.xMode || "step";
    var tables = [], series = [{}], ids = [], colors = [], points = 0, bands = [];
    if (opts.groupBy) {
      AT.groupRuns(runs.filter(function (r) { return !(opts.hidden || {})[r.id]; }), opts.groupBy).forEach(function (g, gi) {
        var curves = [];
        g.runs.forEach(function (run) {
          var m = run.metrics && run.metrics[key];
          if (!m || !m.values || !m.values.length) return;
          var xy = cleanXY(xsFor(run, m, mode), m.values, mode !== "step");
          curves.push([xy[0], AT.ema(xy[1], opts.smooth || 0)]);
        });
        if (!curves.length) return;
        var st = AT.groupStats(curves, mode);
        function pos(a) { return opts.log ? a.map(function (v) { return v > 0 ? v : null; }) : a; }
        var color = AT.color(gi), base = series.length;
        tables.push([st.x, pos(st.mean)], [st.x, pos(st.max)], [st.x, pos(st.min)]);
        points += st.x.length;
        var label = g.label + " (" + curves.length + " run" + (curves.length === 1 ? "" : "s") + ")";
        series.push({label: label + " mean", stroke: color, width: 2, spanGaps: true, points: {show: st.x.length === 1, size: 5}},
                    {label: label + " max", stroke: alpha(color, 0.35), width: 0.5, spanGaps: true, points: {show: false}},
                    {label: label + " min", stroke: alpha(color, 0.35), width: 0.5, spanGaps: true, points: {show: false}});
        bands.push({series: [base + 1, base + 2], fill: alpha(color, 0.15)});
        ids.push("group:" + g.value, "group-max:" + g.value, "group-min:" + g.value);
        colors.push(color, alpha(color, 0.5), alpha(color, 0.5));
      });
    } else runs.forEach(function (run, i) {
      var m = run.metrics && run.metrics[key];
      if (!m || !m.values || !m.values.length) return;
      var xy = cleanXY(xsFor(run, m, mode), m.values, mode !== "step");
      var ys = AT.ema(xy[1], opts.smooth || 0);
      if (opts.log) ys = ys.map(function (v) { return v === null || v === undefined || !(v > 0) ? null : v; });
      tables.push([xy[0], ys]);
      points += xy[0].length;
      var ci = opts.colorOf ? opts.colorOf(run.id) : i;
      series.push({label: AT.runLabel(run), stroke: AT.color(ci), dash: AT.dash(ci) || undefined, width: 1.5,
                   spanGaps: true, points: {show: xy[0].length === 1, size: 5}, show: !(opts.hidden || {})[run.id]});
      ids.push(run.id);
      colors.push(AT.color(ci));
    });
    div.innerHTML = "";
    div.setAttribute("data-key", key);
    var head = document.createElement("div");
    head.className = "chart-title";
    head.textContent = key;
    div.appendChild(head);
    if (!tables.length) {
      var p = document.createElement("p"); p.className = "muted"; p.textContent = "no values";
      div.appendChild(p);
      div._at = {series: [], points: 0};
      return div._at;
    }
    var data = tables.length === 1 ? tables[0] : root.uPlot.join(tables);
    var width = opts.width || Math.max(300, div.clientWidth || 460);
    var axisFont = "11px system-ui, sans-serif";
    var tip = document.createElement("div");
    tip.className = "chart-tip";
    var plotOpts = {
      width: width, height: opts.height || 240, legend: {show: false},
      cursor: {points: {size: 6}, drag: {x: true, y: false}, focus: {prox: 24}},
      focus: {alpha: 0.35},
      scales: {x: {time: mode === "wall"}, y: opts.log ? {distr: 3, log: 10} : {}},
      series: series,
      bands: bands,
      axes: [
        {stroke: th.muted, font: axisFont, grid: {stroke: th.grid, width: 1}, ticks: {stroke: th.grid, width: 1},
         label: mode === "step" ? "step" : mode === "rel" ? "seconds since start" : null, labelSize: mode === "wall" ? 0 : 16,
         labelFont: axisFont, values: mode === "wall" ? undefined : function (u, s) { return s.map(tick); }},
        {stroke: th.muted, font: axisFont, grid: {stroke: th.grid, width: 1}, ticks: {stroke: th.grid, width: 1},
         values: function (u, s) { return s.map(tick); },
         size: function (u, values) {
           if (!values) return 40;
           var w = values.reduce(function (a, v) { return Math.max(a, String(v).length); }, 0);
           return Math.max(36, w * 6.5 + 14);
         }}
      ],
      hooks: {setCursor: [function (u) { showTip(u); }]}
    };
    var plot = new root.uPlot(plotOpts, data, div);
    plot.over.appendChild(tip);
    function showTip(u) {
      var idx = u.cursor.idx;
      if (idx === null || idx === undefined || u.cursor.left < 0) { tip.style.display = "none"; return; }
      var x = u.data[0][idx], rows = [];
      for (var s = 1; s < u.series.length; s++) {
        if (!u.series[s].show) continue;
        var v = u.data[s][idx];
        if (v === null || v === undefined) continue;
        rows.push([v, s]);
      }
      if (!rows.length) { tip.style.display = "none"; return; }
      rows.sort(function (a, b) { return a[0] - b[0]; });
      var xl = mode === "wall" ? new Date(x * 1000).toISOString().replace("T", " ").slice(0, 19) : tick(x);
      tip.innerHTML = '<div class="muted">' + (mode === "step" ? "step " : "") + AT.esc(xl) + (mode === "rel" ? " s" : "") + "</div>" +
        rows.slice(0, 10).map(function (r) {
          return '<div><span class="sw" style="background:' + colors[r[1] - 1] + '"></span>' + AT.esc(u.series[r[1]].label) +
            " <b>" + AT.esc(tick(r[0])) + "</b></div>"; }).join("") + (rows.length > 10 ? '<div class="muted">+' + (rows.length - 10) + " more</div>" : "");
      tip.style.display = "block";
      var left = u.cursor.left + 14, ow = u.over.clientWidth;
      tip.style.left = (left + 220 > ow ? Math.max(0, u.cursor.left - 230) : left) + "px";
      tip.style.top = Math.max(0, u.cursor.top - 10) + "px";
    }
    plot.over.addEventListener("mouseleave", function () { tip.style.display = "none"; });
    div._at = {plot: plot, series: ids, points: points, key: key, groups: bands.length,
               setShow: function (id, show) { var j = ids.indexOf(id); if (j >= 0) plot.setSeries(j + 1, {show: show}); }};
    return div._at;
  };

  /* A panel of charts with x-axis, smoothing and log-scale controls and one shared legend whose
     entries toggle a run in every chart. Returns {ready, update(runs), setKeys(keys), state} */
  AT.metricPanel = function (container, runs, keys, opts) {
    opts = opts || {};
    container.innerHTML = "";
    var state = {xMode: opts.xMode || "step", smooth: opts.smooth || 0, log: !!opts.log, hidden: {}, groupBy: null,
                 perChart: {}};  /* perChart[key] = {log, smooth}: one chart's own settings over the panel's */
    var groupable = runs.length >= 3 ? AT.varyingParams(runs) : [];
    var controls = document.createElement("div");
    controls.className = "controls";
    controls.innerHTML = '<label>x-axis <select class="at-x"><option value="step">step</option><option value="rel">relative time</option>' +
      '<option value="wall">wall time</option></select></label> ' +
      '<label><input type="checkbox" class="at-log"> log scale</label> ' +
      '<label>smoothing <input type="range" class="at-smooth" min="0" max="0.99" step="0.01" value="' + state.smooth + '"> ' +
      '<span class="at-smooth-v">' + state.smooth + "</span></label>" +
      (groupable.length ? ' <label title="one mean line per value, with the min-max band of its runs">group by <select class="at-group"><option value="">(none: one line per run)</option>' +
        groupable.map(function (k) { return '<option value="' + AT.esc(k) + '">' + AT.esc(k) + "</option>"; }).join("") + "</select></label>" : "");
    container.appendChild(controls);
    var legend = document.createElement("div");
    legend.className = "legend";
    container.appendChild(legend);
    var grid = document.createElement("div");
    grid.className = "plot-grid";
    container.appendChild(grid);
    controls.querySelector(".at-x").value = state.xMode;
    controls.querySelector(".at-log").checked = state.log;
    var charts = {};
    var colorIndex = {};
    function colorOf(id) { return colorIndex[id]; }
    function drawLegend() {
      var shown = runs.filter(function (r) { return keys.some(function (k) { return r.metrics && r.metrics[k]; }); });
      legend.style.display = runs.length > 1 ? "" : "none";
      var groups = state.groupBy ? AT.groupRuns(shown.filter(function (r) { return !state.hidden[r.id]; }), state.groupBy) : [];
      legend.innerHTML = (groups.length ? '<div class="legend-groups">' + groups.map(function (g, gi) {
        return '<span class="legend-group"><span class="sw" style="background:' + AT.color(gi) + '"></span>' + AT.esc(g.label) +
          ' <span class="muted">' + g.runs.length + " run" + (g.runs.length === 1 ? "" : "s") + ", mean and min–max</span></span>";
      }).join("") + "</div>" : "") + shown.map(function (r) {
        var ci = colorOf(r.id), dash = AT.dash(ci);
        return '<button type="button" class="legend-item' + (state.hidden[r.id] ? " off" : "") + '" data-id="' + AT.esc(r.id) + '" title="click: hide/show; double-click: only this run">' +
          '<span class="sw' + (dash ? " dashed" : "") + '" style="background:' + AT.color(ci) + '"></span>' + AT.esc(AT.runLabel(r)) + "</button>";
      }).join("");
    }
    function draw() {
      runs.forEach(function (r, i) { if (colorIndex[r.id] === undefined) colorIndex[r.id] = opts.colorOf ? opts.colorOf(r.id) : i; });
      var existing = {};
      Array.prototype.forEach.call(grid.children, function (d) { existing[d.getAttribute("data-key")] = d; });
      grid.innerHTML = "";
      keys.forEach(function (key) {
        var d = existing[key] || document.createElement("div");
        d.className = "plot at-chart";
        grid.appendChild(d);
        if (d._at && d._at.plot) d._at.plot.destroy();
        drawChart(key, d);
      });
      drawLegend();
      return new Promise(function (resolve) { requestAnimationFrame(function () { resolve(); }); });
    }
    function drawChart(key, d) {
      var own = state.perChart[key] || {};
      var log = own.log !== undefined ? own.log : state.log, smooth = own.smooth !== undefined ? own.smooth : state.smooth;
      charts[key] = AT.guard(d, "chart " + key, function () {
        var c = AT.lineChart(d, runs, key, {xMode: state.xMode, log: log, smooth: smooth, hidden: state.hidden, colorOf: colorOf,
                                            groupBy: state.groupBy});
        var bar = document.createElement("div");  /* this chart's own log scale and smoothing */
        bar.className = "chart-controls";
        bar.innerHTML = '<label><input type="checkbox" class="at-chart-log"' + (log ? " checked" : "") + "> log</label> " +
          '<label>smooth <input type="range" class="at-chart-smooth" min="0" max="0.99" step="0.01" value="' + smooth + '"></label>';
        d.insertBefore(bar, d.children[1] || null);
        bar.querySelector(".at-chart-log").addEventListener("change", function (e) {
          state.perChart[key] = Object.assign({}, state.perChart[key], {log: e.target.checked}); redraw(key);
        });
        bar.querySelector(".at-chart-smooth").addEventListener("change", function (e) {
          state.perChart[key] = Object.assign({}, state.perChart[key], {smooth: parseFloat(e.target.value)}); redraw(key);
        });
        return c;
      });
    }
    function redraw(key) {
      var d = grid.querySelector('.at-chart[data-key="' + (root.CSS && CSS.escape ? CSS.escape(key) : key) + '"]');
      if (!d) return;
      if (d._at && d._at.plot) d._at.plot.destroy();
      drawChart(key, d);
    }
    function setShow(id, show) {
      if (show) delete state.hidden[id]; else state.hidden[id] = true;
      if (state.groupBy) { draw(); return; }  /* group means are recomputed without the hidden runs */
      Object.keys(charts).forEach(function (k) { if (charts[k] && charts[k].setShow) charts[k].setShow(id, show); });
      drawLegend();
    }
    legend.addEventListener("click", function (e) {
      var b = e.target.closest(".legend-item"); if (!b) return;
      var id = b.getAttribute("data-id"); setShow(id, !!state.hidden[id]);
    });
    legend.addEventListener("dblclick", function (e) {
      var b = e.target.closest(".legend-item"); if (!b) return;
      var id = b.getAttribute("data-id");
      runs.forEach(function (r) { setShow(r.id, r.id === id); });
    });
    controls.querySelector(".at-x").addEventListener("change", function (e) { state.xMode = e.target.value; draw(); });
    /* the panel's log scale and smoothing set every chart again (one chart's own settings are dropped) */
    controls.querySelector(".at-log").addEventListener("change", function (e) { state.log = e.target.checked; state.perChart = {}; draw(); });
    var groupSelect = controls.querySelector(".at-group");
    if (groupSelect) groupSelect.addEventListener("change", function (e) { state.groupBy = e.target.value || null; draw(); });
    controls.querySelector(".at-smooth").addEventListener("input", function (e) {
      state.perChart = {};
      state.smooth = parseFloat(e.target.value);
      controls.querySelector(".at-smooth-v").textContent = e.target.value;
      draw();
    });
    var resizeTimer = null;
    function onResize() {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(function () {
        Object.keys(charts).forEach(function (k) {
          var c = charts[k]; if (!c || !c.plot) return;
          var d = c.plot.root.parentNode; if (d && d.clientWidth) c.plot.setSize({width: d.clientWidth, height: c.plot.height});
        });
      }, 150);
    }
    root.addEventListener("resize", onResize);
    var ready = draw();
    return {ready: ready, state: state, charts: charts, setShow: setShow,
            update: function (newRuns, newKeys) { runs = newRuns; if (newKeys) keys = newKeys; return draw(); },
            setKeys: function (newKeys) { keys = newKeys; return draw(); }};
  };

  /* ---------- params against a metric ---------- */

  function paramValues(runs, k) { return runs.map(function (r) { var v = (r.params || {})[k]; return v === undefined ? null : v; }); }
  function metricValues(runs, metric) {
    return runs.map(function (r) {
      var v = (r.summary || {})[metric];
      return typeof v === "number" && isFinite(v) ? v : null;
    });
  }
  function isNum(v) { return typeof v === "number" && isFinite(v); }
  /* params that differ between runs (a param only some runs have differs) */
  AT.varyingParams = function (runs) {
    var keys = {};
    runs.forEach(function (r) { Object.keys(r.params || {}).forEach(function (k) { keys[k] = true; }); });
    return Object.keys(keys).sort().filter(function (k) {
      var seen = new Set(paramValues(runs, k).map(function (v) { return JSON.stringify(v); }));
      return seen.size > 1;
    });
  };

  /* params worth an axis: two runs at least have different values; at most `max`, the ones that
     explain most of the metric (AT.importance's score) first, then the ones most runs have */
  AT.axisParams = function (runs, metric, max) {
    max = max || 12;
    var imp = {};
    AT.importance(runs, metric).forEach(function (r) { imp[r.param] = r; });
    var cands = AT.varyingParams(runs).filter(function (k) {  /* two values at least, among the runs that have it */
      return new Set(paramValues(runs, k).filter(function (v) { return v !== null; }).map(function (v) { return JSON.stringify(v); })).size >= 2;
    });
    var present = {};
    cands.forEach(function (k) { present[k] = runs.filter(function (r) { return r.params && Object.prototype.hasOwnProperty.call(r.params, k); }).length; });
    var ranked = cands.slice().sort(function (a, b) {
      var ra = imp[a] && imp[a].score !== null ? imp[a].score : -1, rb = imp[b] && imp[b].score !== null ? imp[b].score : -1;
      return rb - ra || present[b] - present[a] || (a < b ? -1 : 1);
    });
    return {keys: ranked.slice(0, max).sort(), total: cands.length};
  };

  function axisFor(label, values) {
    var present = values.filter(function (v) { return v !== null && v !== undefined; });
    var numeric = present.length > 0 && present.every(isNum);
    if (numeric) {
      var lo = Math.min.apply(null, present), hi = Math.max.apply(null, present);
      var log = lo > 0 && hi / lo >= 100;
      var f = log ? function (v) { return Math.log10(v); } : function (v) { return v; };
      var a = f(lo), b = f(hi);
      return {label: label, numeric: true, log: log, lo: lo, hi: hi, missing: present.length < values.length,
              pos: function (v) { return isNum(v) ? (b === a ? 0.5 : (f(v) - a) / (b - a)) : null; },
              ticks: (lo === hi ? [lo] : [lo, log ? Math.pow(10, (a + b) / 2) : (lo + hi) / 2, hi])};
    }
    var cats = Array.from(new Set(present.map(function (v) { return typeof v === "string" ? v : JSON.stringify(v); }))).sort();
    return {label: label, numeric: false, cats: cats, missing: present.length < values.length,
            pos: function (v) {
              if (v === null || v === undefined) return null;
              var j = cats.indexOf(typeof v === "string" ? v : JSON.stringify(v));
              return cats.length === 1 ? 0.5 : j / (cats.length - 1);
            }};
  }
  function short(s, n) { s = String(s); return s.length > n ? s.slice(0, n - 1) + "…" : s; }
  var SVGNS = "http://www.w3.org/2000/svg";
  function el(name, attrs, parent) {
    var e = document.createElementNS(SVGNS, name);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(e);
    return e;
  }
  function viridis(t) {
    var scale = [[0, [68, 1, 84]], [0.25, [59, 82, 139]], [0.5, [33, 145, 140]], [0.75, [94, 201, 98]], [1, [253, 231, 37]]];
    if (t === null || !isFinite(t)) return "#999";
    t = Math.max(0, Math.min(1, t));
    for (var i = 1; i < scale.length; i++) {
      if (t <= scale[i][0]) {
        var a = scale[i - 1], b = scale[i], f = (t - a[0]) / (b[0] - a[0]);
        return "rgb(" + [0, 1, 2].map(function (c) { return Math.round(a[1][c] * (1 - f) + b[1][c] * f); }).join(",") + ")";
      }
    }
    return "rgb(253,231,37)";
  }

  /* Parallel coordinates (SVG): one axis per param that varies plus the metric; one line per run,
     coloured by the metric. Drag along an axis to brush a range (click the axis to clear); opts.onBrush(ids)
     gets the runs inside every brushed range. A run missing a value sits on the "n/a" row under the axis. */
  AT.parcoords = function (div, runs, metric, opts) {
    opts = opts || {};
    var th = AT.theme();
    var chosen = AT.axisParams(runs, metric, opts.maxAxes || 12), dimsKeys = chosen.keys;
    var dims = dimsKeys.map(function (k) { var vals = paramValues(runs, k); var ax = axisFor(k, vals); ax.values = vals; return ax; });
    var mvals = metricValues(runs, metric);
    var max = axisFor(metric, mvals); max.values = mvals; max.isMetric = true;
    dims.push(max);
    div.innerHTML = chosen.total > dimsKeys.length ? '<p class="muted">' + dimsKeys.length + " of " + chosen.total +
      " params that differ (the ones " + AT.esc(metric) + " follows most closely, then those most runs have)</p>" : "";
    var width = Math.max(420, div.clientWidth || 900), height = 320, top = 34, bottom = 52, left = 60, right = 60;
    var plotH = height - top - bottom, naY = top + plotH + 28;
    var svg = el("svg", {width: width, height: height, "class": "parcoords", role: "img"}, div);
    var step = dims.length > 1 ? (width - left - right) / (dims.length - 1) : 0;
    function xOf(j) { return dims.length > 1 ? left + j * step : width / 2; }
    function yOf(d, v) { var p = d.pos(v); return p === null ? naY : top + (1 - p) * plotH; }
    var brushes = {};
    var lines = el("g", {}, svg);
    var paths = runs.map(function (r, i) {
      var pts = dims.map(function (d, j) { return xOf(j) + "," + yOf(d, d.values[i]).toFixed(1); });
      var p = el("polyline", {points: pts.join(" "), fill: "none", stroke: viridis(max.pos(mvals[i])), "stroke-width": 1.6,
                              "stroke-opacity": 0.85, "data-id": r.id}, lines);
      var t = el("title", {}, p);
      t.textContent = AT.runLabel(r) + "\n" + dims.map(function (d) {
        var v = d.values[i]; return d.label + ": " + (v === null || v === undefined ? "—" : AT.fmt(v)); }).join("\n");
      return p;
    });
    dims.forEach(function (d, j) {
      var g = el("g", {"class": "pc-axis", "data-dim": d.label}, svg), x = xOf(j);
      el("line", {x1: x, x2: x, y1: top, y2: top + plotH, stroke: th.axis, "stroke-width": 1}, g);
      var lab = el("text", {x: x, y: top - 18, "text-anchor": "middle", fill: th.fg, "font-size": 11, "font-weight": d.isMetric ? 700 : 400}, g);
      lab.textContent = short(d.label, Math.max(8, Math.floor(step / 7) || 24));
      el("title", {}, lab).textContent = d.label;
      var ticks = d.numeric ? d.ticks.map(function (v) { return [v, AT.fmt(v)]; }) : d.cats.map(function (c) { return [c, c]; });
      if (!d.numeric && ticks.length > 12) ticks = ticks.filter(function (_, q) { return q % Math.ceil(ticks.length / 12) === 0; });
      ticks.forEach(function (tv) {
        var y = yOf(d, tv[0]);
        el("line", {x1: x - 3, x2: x + 3, y1: y, y2: y, stroke: th.axis}, g);
        var t = el("text", {x: x - 6, y: y + 3.5, "text-anchor": "end", fill: th.muted, "font-size": 10}, g);
        t.textContent = short(tv[1], 14);
      });
      if (d.missing) { var na = el("text", {x: x - 6, y: naY + 3.5, "text-anchor": "end", fill: th.muted, "font-size": 10}, g); na.textContent = "n/a"; }
      var hit = el("rect", {x: x - 12, y: top - 4, width: 24, height: plotH + 8, fill: "transparent", "class": "pc-hit", cursor: "ns-resize"}, g);
      var band = el("rect", {x: x - 7, y: top, width: 14, height: 0, "class": "pc-brush", fill: "rgba(100,150,255,0.25)", stroke: "#4a7fd6", visibility: "hidden", "pointer-events": "none"}, g);
      var y0 = null;
      function pt(e) { var r = svg.getBoundingClientRect(); return Math.max(top, Math.min(top + plotH, e.clientY - r.top)); }
      hit.addEventListener("mousedown", function (e) {
        e.preventDefault(); y0 = pt(e);
        function move(ev) { var y1 = pt(ev); set(Math.min(y0, y1), Math.max(y0, y1)); }
        function up(ev) {
          root.removeEventListener("mousemove", move); root.removeEventListener("mouseup", up);
          var y1 = pt(ev);
          if (Math.abs(y1 - y0) < 3) { delete brushes[j]; band.setAttribute("visibility", "hidden"); apply(); }
          y0 = null;
        }
        root.addEventListener("mousemove", move); root.addEventListener("mouseup", up);
      });
      function set(ya, yb) {
        band.setAttribute("y", ya); band.setAttribute("height", yb - ya); band.setAttribute("visibility", "visible");
        brushes[j] = [1 - (yb - top) / plotH, 1 - (ya - top) / plotH];
        apply();
      }
    });
    function apply() {
      var keep = [];
      runs.forEach(function (r, i) {
        var ok = Object.keys(brushes).every(function (j) {
          var p = dims[j].pos(dims[j].values[i]); return p !== null && p >= brushes[j][0] - 1e-9 && p <= brushes[j][1] + 1e-9;
        });
        paths[i].setAttribute("stroke-opacity", ok ? 0.9 : 0.06);
        if (ok) keep.push(r.id);
      });
      div.setAttribute("data-selected", keep.length);
      if (opts.onBrush) opts.onBrush(Object.keys(brushes).length ? keep : null);
    }
    /* colour bar for the metric */
    var cb = el("g", {}, svg), cbx = width - 18;
    for (var q = 0; q < 20; q++) el("rect", {x: cbx, y: top + (1 - (q + 1) / 20) * plotH, width: 8, height: plotH / 20 + 0.5, fill: viridis(q / 19)}, cb);
    div._at = {dims: dims.map(function (d) { return d.label; }), lines: paths.length};
    return div._at;
  };

  /* A param (x) against a metric (y), one dot per run, in the run's colour. */
  AT.scatter = function (div, runs, param, metric, opts) {
    opts = opts || {};
    var th = AT.theme();
    var xs = paramValues(runs, param), ys = metricValues(runs, metric);
    var ax = axisFor(param, xs), ay = axisFor(metric, ys);
    div.innerHTML = "";
    var width = Math.max(360, Math.min(div.clientWidth || 520, 640)), height = 300, l = 64, r = 16, t = 14, b = 40;
    var svg = el("svg", {width: width, height: height, "class": "scatter"}, div);
    var W = width - l - r, H = height - t - b;
    el("rect", {x: l, y: t, width: W, height: H, fill: "none", stroke: th.grid}, svg);
    function X(v) { var p = ax.pos(v); return p === null ? null : l + (ax.numeric ? p : (0.1 + 0.8 * p)) * W; }
    function Y(v) { var p = ay.pos(v); return p === null ? null : t + (1 - p) * H; }
    var xt = ax.numeric ? ax.ticks.map(function (v) { return [v, AT.fmt(v)]; }) : ax.cats.map(function (c) { return [c, c]; });
    xt.forEach(function (tv) { var x = X(ax.numeric ? tv[0] : tv[0]); if (x === null) return;
      var e = el("text", {x: x, y: t + H + 14, "text-anchor": "middle", fill: th.muted, "font-size": 10}, svg); e.textContent = short(tv[1], 12); });
    (ay.numeric ? ay.ticks : []).forEach(function (v) { var y = Y(v);
      var e = el("text", {x: l - 6, y: y + 3, "text-anchor": "end", fill: th.muted, "font-size": 10}, svg); e.textContent = AT.fmt(v); });
    var xl = el("text", {x: l + W / 2, y: height - 6, "text-anchor": "middle", fill: th.fg, "font-size": 11}, svg);
    xl.textContent = param + (ax.log ? " (log)" : "");
    var yl = el("text", {x: 12, y: t + H / 2, "text-anchor": "middle", fill: th.fg, "font-size": 11, transform: "rotate(-90 12 " + (t + H / 2) + ")"}, svg);
    yl.textContent = metric;
    var n = 0;
    runs.forEach(function (run, i) {
      var x = X(xs[i]), y = Y(ys[i]);
      if (x === null || y === null) return;
      n++;
      var c = el("circle", {cx: x, cy: y, r: 4.5, fill: AT.color(opts.colorOf ? opts.colorOf(run.id) : i), "fill-opacity": 0.85, "data-id": run.id}, svg);
      el("title", {}, c).textContent = AT.runLabel(run) + "\n" + param + ": " + AT.fmt(xs[i]) + "\n" + metric + ": " + AT.fmt(ys[i]);
    });
    div._at = {points: n};
    if (!n) { var p = document.createElement("p"); p.className = "muted"; p.textContent = "no run has both values"; div.appendChild(p); }
    return div._at;
  };

  /* Spearman rank correlation of each numeric param with the metric (over runs having both). */
  function ranks(v) {
    var idx = v.map(function (_, i) { return i; }).sort(function (a, b) { return v[a] - v[b]; });
    var out = new Array(v.length), i = 0;
    while (i < idx.length) {
      var j = i; while (j + 1 < idx.length && v[idx[j + 1]] === v[idx[i]]) j++;
      for (var k = i; k <= j; k++) out[idx[k]] = (i + j) / 2 + 1;
      i = j + 1;
    }
    return out;
  }
  AT.spearman = function (x, y) {
    var n = x.length; if (n < 3) return null;
    var rx = ranks(x), ry = ranks(y), mx = 0, my = 0, i;
    for (i = 0; i < n; i++) { mx += rx[i]; my += ry[i]; }
    mx /= n; my /= n;
    var sxy = 0, sxx = 0, syy = 0;
    for (i = 0; i < n; i++) { var a = rx[i] - mx, b = ry[i] - my; sxy += a * b; sxx += a * a; syy += b * b; }
    return sxx && syy ? sxy / Math.sqrt(sxx * syy) : null;
  };
  /* How much of the metric's spread a param explains, whatever the shape of the relation (a
     U-shaped lr, an optimizer's name): the metric's ranks grouped by the param's value (a numeric
     param with more than 10 values: into up to 10 equal-count bins of its ranks), and epsilon
     squared of that grouping -- the between-group share of the rank variance, corrected for the
     number of groups: 0 nothing, 1 everything. null when the groups leave no runs to compare within. */
  AT.explained = function (xs, ys, numeric) {
    var n = xs.length; if (n < 3) return null;
    var ry = ranks(ys), groups = {}, i, key;
    var binned = numeric && new Set(xs).size > 10;
    var rx = binned ? ranks(xs) : null, bins = binned ? Math.min(10, Math.max(2, Math.floor(Math.sqrt(n)))) : 0;
    for (i = 0; i < n; i++) {
      key = binned ? Math.min(bins - 1, Math.floor((rx[i] - 1) * bins / n)) : JSON.stringify(xs[i]);
      (groups[key] = groups[key] || []).push(ry[i]);
    }
    var names = Object.keys(groups), g = names.length, mean = (n + 1) / 2, total = 0, between = 0;
    if (g < 2 || n - g < 1) return null;
    for (i = 0; i < n; i++) total += (ry[i] - mean) * (ry[i] - mean);
    if (!total) return null;
    names.forEach(function (k) {
      var m = groups[k].reduce(function (a, b) { return a + b; }, 0) / groups[k].length;
      between += groups[k].length * (m - mean) * (m - mean);
    });
    var within = (total - between) / (n - g);
    return Math.max(0, Math.min(1, (between - (g - 1) * within) / total));
  };
  /* Each varying param against `metric`: `explained` (AT.explained, any param), `rho` (Spearman,
     numeric params: the direction) and `score` -- explained when it can be computed, else rho
     squared -- which ranks them. */
  AT.importance = function (runs, metric) {
    var ys = metricValues(runs, metric);
    return AT.varyingParams(runs).map(function (k) {
      var xs = paramValues(runs, k), px = [], py = [], numeric = true;
      xs.forEach(function (v, i) {
        if (v === null || ys[i] === null) return;
        if (typeof v === "boolean") v = v ? 1 : 0;
        if (!isNum(v)) numeric = false;
        px.push(v); py.push(ys[i]);
      });
      var have = xs.filter(function (v) { return v !== null; });
      var distinct = new Set(have.map(function (v) { return JSON.stringify(v); })).size;
      var rho = numeric ? AT.spearman(px, py) : null, explained = AT.explained(px, py, numeric);
      return {param: k, numeric: numeric, n: px.length, present: have.length, distinct: distinct, rho: rho, explained: explained,
              score: explained !== null ? explained : (rho !== null ? rho * rho : null)};
    }).sort(function (a, b) {
      return (b.score === null ? -1 : b.score) - (a.score === null ? -1 : a.score) || (a.param < b.param ? -1 : 1);
    });
  };
  AT.importanceTable = function (div, runs, metric) {
    var all = AT.importance(runs, metric);
    var rows = all.filter(function (r) { return r.distinct >= 2 && r.n >= 3; });
    var few = all.length - rows.length;
    div.innerHTML = '<p class="muted">Over the runs that have the param and ' + AT.esc(metric) + ' (last value): <b>explained</b> is the share of ' +
      "the metric's rank variance the param's values account for (grouped; numeric params with many values in up to 10 bins), whatever the shape " +
      "of the relation -- a U-shaped learning rate or an optimizer's name included; ρ is the Spearman rank correlation of numeric params (its sign: " +
      "the direction). Ranked by explained (ρ² where too few runs share a value).</p>" +
      (rows.length ? '<table class="importance"><thead><tr><th>param</th><th>explained</th><th></th><th>ρ</th><th>runs</th></tr></thead><tbody>' +
      rows.map(function (r) {
        var w = r.score === null ? 0 : Math.round(r.score * 120);
        return "<tr><td>" + AT.esc(r.param) + '</td><td class="num">' + (r.explained === null ? '<span class="muted">too few per value</span>' : r.explained.toFixed(2)) +
          '</td><td><span class="bar' + (r.rho !== null && r.rho < 0 ? " neg" : "") + '" style="width:' + w + 'px"></span></td><td class="num">' +
          (r.rho === null ? '<span class="muted">' + (r.numeric ? "too few runs" : "text") + "</span>" : r.rho.toFixed(2)) + '</td><td class="num">' + r.n + "</td></tr>";
      }).join("") + "</tbody></table>" : '<p class="muted">No param differs between these runs.</p>') +
      (few ? '<p class="muted">' + few + " more params differ only in being set or not, or are set in fewer than 3 of these runs: not ranked.</p>" : "");
    div._at = {rows: rows};
    return rows;
  };

  /* Keys split into system metrics and the rest, training keys first. */
  AT.splitKeys = function (keys) {
    var order = ["train/loss", "val/loss", "train/grad_norm", "train/lr"];
    var sys = [], rest = [];
    keys.forEach(function (k) { (k.indexOf("system/") === 0 ? sys : rest).push(k); });
    rest.sort(function (a, b) {
      var ia = order.indexOf(a), ib = order.indexOf(b);
      if (ia < 0) ia = 99; if (ib < 0) ib = 99;
      var ga = a.indexOf("grad_norm/") === 0 ? 1 : 0, gb = b.indexOf("grad_norm/") === 0 ? 1 : 0;
      return ga - gb || ia - ib || (a < b ? -1 : a > b ? 1 : 0);
    });
    return {train: rest, system: sys.sort()};
  };

  /* A small, safe Markdown renderer for notes: the text is escaped first, so no HTML passes;
     links only for http(s) and relative addresses. */
  AT.markdown = function (src) {
    var lines = String(src || "").replace(/\r\n?/g, "\n").split("\n"), out = [], inCode = false, list = null, para = [];
    function inline(s) {
      s = AT.esc(s);
      var codes = [];
      s = s.replace(/`([^`]+)`/g, function (_, c) { codes.push(c); return "\u0000" + (codes.length - 1) + "\u0000"; });
      s = s.replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>").replace(/(^|[^*])\*([^*]+)\*/g, "$1<em>$2</em>");
      s = s.replace(/\[([^\]]+)\]\(([^)\s]+)\)/g, function (m, text, href) {
        var raw = href.replace(/&amp;/g, "&");
        if (!/^(https?:\/\/|#|\/)/i.test(raw)) return m;
        return '<a href="' + href + '" rel="noopener noreferrer" target="_blank">' + text + "</a>";
      });
      return s.replace(/\u0000(\d+)\u0000/g, function (_, i) { return "<code>" + codes[+i] + "</code>"; });
    }
    function flush() {
      if (para.length) { out.push("<p>" + para.map(inline).join(" ") + "</p>"); para = []; }
      if (list) { out.push("<" + list.tag + ">" + list.items.map(function (i) { return "<li>" + inline(i) + "</li>"; }).join("") + "</" + list.tag + ">"); list = null; }
    }
    var code = [];
    lines.forEach(function (line) {
      if (/^```/.test(line)) {
        if (inCode) { out.push("<pre><code>" + AT.esc(code.join("\n")) + "</code></pre>"); code = []; inCode = false; }
        else { flush(); inCode = true; }
        return;
      }
      if (inCode) { code.push(line); return; }
      var m;
      if ((m = line.match(/^(#{1,4})\s+(.*)$/))) { flush(); out.push("<h" + (m[1].length + 2) + ">" + inline(m[2]) + "</h" + (m[1].length + 2) + ">"); return; }
      if ((m = line.match(/^\s*[-*]\s+(.*)$/)) || (m = line.match(/^\s*\d+[.)]\s+(.*)$/))) {
        var tag = /^\s*\d/.test(line) ? "ol" : "ul";
        if (para.length || (list && list.tag !== tag)) flush();
        if (!list) list = {tag: tag, items: []};
        list.items.push(m[1]); return;
      }
      if (!line.trim()) { flush(); return; }
      if (list) flush();
      para.push(line);
    });
    if (inCode) out.push("<pre><code>" + AT.esc(code.join("\n")) + "</code></pre>");
    flush();
    return out.join("");
  };

  /* Evaluation plots (autotrack.integrations._evalplots JSON): a confusion-matrix heatmap, or ROC /
     precision-recall curves (one per class one-vs-rest, or of the positive class), drawn in SVG from
     the stored arrays. Non-finite numbers arrive as the strings "Infinity", "-Infinity", "NaN". */
  AT.evalPlot = function (div, doc) {
    var th = AT.theme();
    div.innerHTML = "";
    var title = (doc.data ? doc.data + " " : "") + (doc.plot === "confusion_matrix" ? "confusion matrix" :
      doc.plot === "roc_curve" ? "ROC" : "precision-recall") +
      (doc.plot === "confusion_matrix" ? "" : doc.pos_label !== null && doc.pos_label !== undefined ? " of " + doc.pos_label : " (one-vs-rest)");
    var labels = (doc.labels || []).map(String);
    if (doc.plot === "confusion_matrix") {
      var m = doc.matrix || [], k = labels.length, cell = Math.max(18, Math.min(56, Math.floor(360 / Math.max(k, 1))));
      var left = 90, top = 40, size = cell * k, width = left + size + 20, height = top + size + 56;
      var svg = el("svg", {width: width, height: height, "class": "evalplot confusion-matrix", role: "img", "data-plot": doc.plot,
                           "data-data": doc.data || ""}, div);
      el("text", {x: left + size / 2, y: 16, "text-anchor": "middle", fill: th.fg, "font-size": 12, "font-weight": 700}, svg).textContent = title;
      var top_ = 0;
      m.forEach(function (row) { row.forEach(function (v) { v = Number(v); if (isFinite(v) && v > top_) top_ = v; }); });
      m.forEach(function (row, i) {
        row.forEach(function (v, j) {
          var n = Number(v), t = top_ > 0 && isFinite(n) ? n / top_ : 0;
          var g = el("g", {"class": "cm-cell", "data-row": i, "data-col": j, "data-value": v}, svg);
          el("rect", {x: left + j * cell, y: top + i * cell, width: cell - 1, height: cell - 1,
                      fill: "rgba(33,102,172," + (0.06 + 0.94 * t).toFixed(3) + ")"}, g);
          if (k <= 20) {
            var txt = el("text", {x: left + j * cell + cell / 2, y: top + i * cell + cell / 2 + 4, "text-anchor": "middle",
                                  "font-size": Math.min(12, cell / 2.5), fill: t > 0.5 ? "#fff" : th.fg}, g);
            txt.textContent = Number.isInteger(n) ? String(n) : AT.fmt(n);
          }
          el("title", {}, g).textContent = "true " + labels[i] + ", predicted " + labels[j] + ": " + AT.fmt(n);
        });
      });
      labels.forEach(function (lab, i) {
        if (k > 30) return;
        el("text", {x: left - 6, y: top + i * cell + cell / 2 + 4, "text-anchor": "end", fill: th.muted, "font-size": 10}, svg).textContent = short(lab, 12);
        el("text", {x: left + i * cell + cell / 2, y: top + size + 14, "text-anchor": "middle", fill: th.muted, "font-size": 10}, svg).textContent = short(lab, 8);
      });
      el("text", {x: left + size / 2, y: top + size + 36, "text-anchor": "middle", fill: th.fg, "font-size": 11}, svg).textContent = "predicted label";
      el("text", {x: 14, y: top + size / 2, "text-anchor": "middle", fill: th.fg, "font-size": 11,
                  transform: "rotate(-90 14 " + (top + size / 2) + ")"}, svg).textContent = "true label";
      return svg;
    }
    var roc = doc.plot === "roc_curve", W = 380, H = 330, L = 46, R = 12, T = 26, B = 40, pw = W - L - R, ph = H - T - B;
    var svg2 = el("svg", {width: W, height: H, "class": "evalplot curve", role: "img", "data-plot": doc.plot, "data-data": doc.data || ""}, div);
    el("text", {x: L + pw / 2, y: 16, "text-anchor": "middle", fill: th.fg, "font-size": 12, "font-weight": 700}, svg2).textContent = title;
    function X(v) { return L + Math.max(0, Math.min(1, v)) * pw; }
    function Y(v) { return T + (1 - Math.max(0, Math.min(1, v))) * ph; }
    [0, 0.25, 0.5, 0.75, 1].forEach(function (t) {
      el("line", {x1: X(t), x2: X(t), y1: T, y2: T + ph, stroke: th.grid}, svg2);
      el("line", {x1: L, x2: L + pw, y1: Y(t), y2: Y(t), stroke: th.grid}, svg2);
      el("text", {x: X(t), y: T + ph + 14, "text-anchor": "middle", fill: th.muted, "font-size": 10}, svg2).textContent = String(t);
      el("text", {x: L - 5, y: Y(t) + 3.5, "text-anchor": "end", fill: th.muted, "font-size": 10}, svg2).textContent = String(t);
    });
    el("text", {x: L + pw / 2, y: H - 6, "text-anchor": "middle", fill: th.fg, "font-size": 11}, svg2).textContent = roc ? "false positive rate" : "recall";
    el("text", {x: 12, y: T + ph / 2, "text-anchor": "middle", fill: th.fg, "font-size": 11,
                transform: "rotate(-90 12 " + (T + ph / 2) + ")"}, svg2).textContent = roc ? "true positive rate" : "precision";
    if (roc) el("line", {x1: X(0), y1: Y(0), x2: X(1), y2: Y(1), stroke: th.axis, "stroke-dasharray": "4 3"}, svg2);
    (doc.curves || []).forEach(function (c, i) {
      var xs = (roc ? c.fpr : c.recall) || [], ys = (roc ? c.tpr : c.precision) || [], pts = [];
      for (var q = 0; q < xs.length; q++) {
        var x = Number(xs[q]), y = Number(ys[q]);
        if (!isFinite(x) || !isFinite(y)) continue;
        pts.push(X(x).toFixed(1) + "," + Y(y).toFixed(1));
      }
      var score = Number(roc ? c.auc : c.average_precision);
      var name = (doc.pos_label !== null && doc.pos_label !== undefined ? "" : c.label + ": ") + (roc ? "AUC " : "AP ") + (isFinite(score) ? score.toFixed(3) : "n/a");
      var line = el("polyline", {points: pts.join(" "), fill: "none", stroke: AT.color(i), "stroke-width": 1.8, "class": "curve-line",
                                 "data-label": c.label}, svg2);
      el("title", {}, line).textContent = name + (c.thinned ? " (" + xs.length + " of " + c.points + " points)" : "");
      var ly = T + ph - 8 - 14 * ((doc.curves.length - 1) - i);  // bottom corner: where these curves rarely go
      var lx = roc ? L + pw - 120 : L + 8;
      el("line", {x1: lx, x2: lx + 14, y1: ly - 4, y2: ly - 4, stroke: AT.color(i), "stroke-width": 2}, svg2);
      el("text", {x: lx + 18, y: ly, fill: th.fg, "font-size": 10, "class": "curve-legend"}, svg2).textContent = short(name, 22);
    });
    return svg2;
  };
})(typeof window !== "undefined" ? window : this);
