/* autotrack plots: shared by the web UI and the self-contained HTML report. Needs Plotly. */
(function (root) {
  "use strict";
  var AT = root.AT || (root.AT = {});
  var PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                 "#7f7f7f", "#bcbd22", "#17becf"];
  AT.color = function (i) { return PALETTE[i % PALETTE.length]; };

  AT.esc = function (s) {
    return String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;"}[c];
    });
  };

  /* exponential moving average (TensorBoard style, debiased); nulls pass through */
  AT.ema = function (values, weight) {
    if (!weight) return values;
    var out = new Array(values.length), last = 0, n = 0;
    for (var i = 0; i < values.length; i++) {
      var v = values[i];
      if (v === null || !isFinite(v)) { out[i] = v; continue; }
      last = last * weight + (1 - weight) * v; n++;
      out[i] = last / (1 - Math.pow(weight, n));
    }
    return out;
  };

  /* text for plotly labels: plotly reads a few pseudo-HTML tags in text, so angle brackets are replaced */
  AT.plain = function (s) { return String(s === null || s === undefined ? "" : s).replace(/</g, "‹").replace(/>/g, "›").replace(/&/g, "＆"); };

  AT.runLabel = function (run) { return AT.plain(run.name) + " (" + run.id.slice(0, 6) + ")"; };

  /* One figure: the curves of `key` for every run that has it.
     runs: [{id, name, metrics: {key: {steps, values, n}}}]; opts: {log, smooth, gl} */
  AT.curves = function (div, runs, key, opts) {
    opts = opts || {};
    var traces = [], total = 0;
    runs.forEach(function (run, i) {
      var m = run.metrics && run.metrics[key];
      if (!m) return;
      total += m.steps.length;
      var color = AT.color(i);
      if (opts.smooth) {
        traces.push({x: m.steps, y: m.values, mode: "lines", line: {color: color, width: 1}, opacity: 0.25,
                     name: AT.runLabel(run), legendgroup: run.id, showlegend: false, hoverinfo: "skip",
                     type: opts.gl ? "scattergl" : "scatter"});
      }
      traces.push({x: m.steps, y: AT.ema(m.values, opts.smooth || 0), mode: "lines", line: {color: color, width: 1.5},
                   name: AT.runLabel(run), legendgroup: run.id, type: opts.gl ? "scattergl" : "scatter"});
    });
    var layout = {title: {text: AT.plain(key), font: {size: 13}}, margin: {l: 50, r: 10, t: 30, b: 30}, height: 280,
                  xaxis: {title: {text: "step"}}, yaxis: {type: opts.log ? "log" : "linear"},
                  showlegend: runs.length > 1 && runs.length <= 20, legend: {font: {size: 10}},
                  uirevision: key};
    return Plotly.react(div, traces, layout, {displaylogo: false, responsive: true});
  };

  /* A panel of curves with log-scale and smoothing controls. Returns {update(runs)} */
  AT.metricPanel = function (container, runs, keys, opts) {
    opts = opts || {};
    container.innerHTML = "";
    var controls = document.createElement("div");
    controls.className = "controls";
    controls.innerHTML = '<label><input type="checkbox" class="at-log"> log scale</label> ' +
      '<label>smoothing <input type="range" class="at-smooth" min="0" max="0.99" step="0.01" value="0"> ' +
      '<span class="at-smooth-v">0</span></label>';
    container.appendChild(controls);
    var grid = document.createElement("div");
    grid.className = "plot-grid";
    container.appendChild(grid);
    var divs = {};
    keys.forEach(function (key) {
      var d = document.createElement("div");
      d.className = "plot";
      d.setAttribute("data-key", key);
      grid.appendChild(d);
      divs[key] = d;
    });
    var state = {log: false, smooth: 0, gl: !!opts.gl && AT.webgl()};
    function draw() { return Promise.all(keys.map(function (k) { return AT.curves(divs[k], runs, k, state); })); }
    controls.querySelector(".at-log").addEventListener("change", function (e) { state.log = e.target.checked; draw(); });
    controls.querySelector(".at-smooth").addEventListener("input", function (e) {
      state.smooth = parseFloat(e.target.value);
      controls.querySelector(".at-smooth-v").textContent = e.target.value;
      draw();
    });
    var ready = draw();
    return {ready: ready, update: function (newRuns) { runs = newRuns; return draw(); }};
  };

  /* Parallel coordinates: one axis per param (that varies) plus the chosen metric, one line per run. */
  AT.parcoords = function (div, runs, metric) {
    var keys = {};
    runs.forEach(function (r) { Object.keys(r.params || {}).forEach(function (k) { keys[k] = true; }); });
    var dims = [];
    Object.keys(keys).sort().forEach(function (k) {
      var vals = runs.map(function (r) { return r.params ? r.params[k] : undefined; });
      var distinct = Array.from(new Set(vals.map(function (v) { return JSON.stringify(v); })));
      if (distinct.length < 2) return;
      var numeric = vals.every(function (v) { return typeof v === "number" || v === undefined || v === null; });
      if (numeric) {
        dims.push({label: k, values: vals.map(function (v) { return v === undefined ? null : v; })});
      } else {
        distinct.sort();
        dims.push({label: k, values: vals.map(function (v) { return distinct.indexOf(JSON.stringify(v)); }),
                   tickvals: distinct.map(function (_, i) { return i; }),
                   ticktext: distinct.map(function (s) { var v = JSON.parse(s); s = typeof v === "string" ? v : s;
                                                     return s.length > 16 ? s.slice(0, 15) + "…" : s; })});
      }
    });
    var mvals = runs.map(function (r) { var v = r.summary ? r.summary[metric] : undefined; return v === undefined ? null : v; });
    dims.push({label: metric, values: mvals});
    /* Drawn as SVG lines over normalised axes (plotly's parcoords needs WebGL and eval, which the
       UI's Content-Security-Policy and GPU-less browsers do not allow). */
    var finite = mvals.filter(function (v) { return v !== null && isFinite(v); });
    var cmin = Math.min.apply(null, finite), cmax = Math.max.apply(null, finite);
    var scale = [[0, "#440154"], [0.25, "#3b528b"], [0.5, "#21918c"], [0.75, "#5ec962"], [1, "#fde725"]];
    function colorAt(t) {
      if (!isFinite(t)) return "#bbbbbb";
      for (var i = 1; i < scale.length; i++) {
        if (t <= scale[i][0]) {
          var a = scale[i - 1], b = scale[i], f = (t - a[0]) / (b[0] - a[0]);
          var ca = parseInt(a[1].slice(1), 16), cb = parseInt(b[1].slice(1), 16);
          var ch = [16, 8, 0].map(function (s) { return Math.round(((ca >> s) & 255) * (1 - f) + ((cb >> s) & 255) * f); });
          return "rgb(" + ch.join(",") + ")";
        }
      }
      return scale[scale.length - 1][1];
    }
    var ranges = dims.map(function (d) {
      var v = d.values.filter(function (x) { return x !== null && isFinite(x); });
      return [Math.min.apply(null, v), Math.max.apply(null, v)];
    });
    function norm(j, v) {
      if (v === null || !isFinite(v)) return null;
      var r = ranges[j]; return r[1] === r[0] ? 0.5 : (v - r[0]) / (r[1] - r[0]);
    }
    function label(j, v) {
      var d = dims[j];
      if (d.ticktext) return d.ticktext[v];
      return typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : String(v);
    }
    var traces = runs.map(function (r, i) {
      var t = cmax === cmin ? 0.5 : (mvals[i] - cmin) / (cmax - cmin);
      return {type: "scatter", mode: "lines+markers", x: dims.map(function (_, j) { return j; }),
              y: dims.map(function (d, j) { return norm(j, d.values[i]); }),
              text: dims.map(function (d, j) { return AT.plain(d.label) + ": " + AT.plain(d.values[i] === null ? "—" : label(j, d.values[i])); }),
              hovertemplate: "<b>" + AT.runLabel(r) + "</b><br>%{text}<extra></extra>",
              line: {color: colorAt(t), width: 2}, marker: {size: 5}, showlegend: false};
    });
    traces.push({type: "scatter", mode: "markers", x: [null], y: [null], hoverinfo: "skip", showlegend: false,
                 marker: {color: [cmin, cmax], cmin: cmin, cmax: cmax, colorscale: scale, showscale: true,
                          colorbar: {title: {text: AT.plain(metric), side: "right"}, thickness: 12}}});
    var shapes = [], annotations = [];
    dims.forEach(function (d, j) {
      shapes.push({type: "line", x0: j, x1: j, y0: 0, y1: 1, line: {color: "#444", width: 1}});
      annotations.push({x: j, y: 1.06, text: AT.plain(label(j, ranges[j][1])), showarrow: false, font: {size: 10}});
      annotations.push({x: j, y: -0.06, text: AT.plain(label(j, ranges[j][0])), showarrow: false, font: {size: 10}});
    });
    var layout = {height: 360, margin: {l: 40, r: 40, t: 30, b: 60}, shapes: shapes, annotations: annotations,
                  xaxis: {tickvals: dims.map(function (_, j) { return j; }), ticktext: dims.map(function (d) { return AT.plain(d.label); }),
                          range: [-0.3, dims.length - 0.7], zeroline: false, showgrid: false},
                  yaxis: {visible: false, range: [-0.12, 1.12]}};
    return Plotly.react(div, traces, layout, {displaylogo: false, responsive: true});
  };

  /* Whether WebGL works here (scattergl for many runs; otherwise SVG). */
  AT.webgl = function () {
    try { var c = document.createElement("canvas"); return !!(c.getContext("webgl") || c.getContext("experimental-webgl")); }
    catch (e) { return false; }
  };

  /* Keys split into system metrics and the rest, training keys first. */
  AT.splitKeys = function (keys) {
    var order = ["train/loss", "train/grad_norm", "train/lr"];
    var sys = [], rest = [];
    keys.forEach(function (k) { (k.indexOf("system/") === 0 ? sys : rest).push(k); });
    rest.sort(function (a, b) {
      var ia = order.indexOf(a), ib = order.indexOf(b);
      if (ia < 0) ia = 99; if (ib < 0) ib = 99;
      return ia - ib || (a < b ? -1 : a > b ? 1 : 0);
    });
    return {train: rest, system: sys.sort()};
  };
})(typeof window !== "undefined" ? window : this);
