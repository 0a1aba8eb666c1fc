// Dashboards: each chart card fetches its own JSON endpoint (with the page's filters) and draws it
// with plotly.js, served from the plotly package. Text from customers is set with textContent only.
(function () {
  "use strict";
  // Okabe-Ito: told apart with the common colour-vision deficiencies.
  var COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"];
  var SPARK = "▁▂▃▄▅▆▇█";
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  var params = new URLSearchParams(window.location.search);
  var drawn = {};
  window.engageCharts = drawn;  // what each card drew, for people debugging and for the browser tests

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function say(text, bad) {
    var box = document.getElementById("toast");
    var item = el("div", "msg" + (bad ? " bad" : ""), text);
    box.appendChild(item);
    setTimeout(function () { item.remove(); }, bad ? 12000 : 6000);
  }

  function label(value) {  // plotly reads a few HTML-like tags in labels; customers' words must stay words
    return String(value === null || value === undefined ? "" : value).replace(/</g, "‹").replace(/>/g, "›");
  }

  function column(data, name) { return data.columns.indexOf(name); }

  function traces(data) {
    var plot = data.plot, x = column(data, plot.x), rows = data.rows, out = [];
    if (plot.type === "heatmap") {
      return [{ type: "heatmap", x: plot.x, y: rows.map(function (r) { return r[0]; }), z: rows.map(function (r) { return r.slice(1); }),
        colorscale: "Viridis", hovertemplate: "%{y} %{x}:00 UTC<br>%{z} messages<extra></extra>" }];
    }
    var horizontal = plot.type === "hbar";
    var kind = plot.type === "line" ? "scatter" : (plot.type === "scatter" ? "scatter" : "bar");
    var mode = plot.type === "line" ? "lines+markers" : (plot.type === "scatter" ? "markers" : undefined);
    var groups = [null];
    if (plot.group) {
      var g = column(data, plot.group);
      groups = rows.map(function (r) { return r[g]; }).filter(function (v, i, all) { return all.indexOf(v) === i; });
    }
    groups.forEach(function (group) {
      var mine = plot.group ? rows.filter(function (r) { return r[column(data, plot.group)] === group; }) : rows;
      plot.y.forEach(function (name) {
        var y = column(data, name), colour = COLOURS[out.length % COLOURS.length];
        var xs = mine.map(function (r) { return label(r[x]); }), ys = mine.map(function (r) { return r[y]; });
        var trace = { type: kind, name: plot.group ? label(group) + (plot.y.length > 1 ? " " + name : "") : name,
          marker: { color: colour }, line: { color: colour }, connectgaps: false };
        if (mode) { trace.mode = mode; }
        if (horizontal) { trace.x = ys; trace.y = xs; trace.orientation = "h";
          trace.hovertemplate = "%{y}<br>" + name + ": %{x}<extra></extra>";
        } else { trace.x = xs; trace.y = ys; trace.hovertemplate = "%{x}<br>" + trace.name + ": %{y}<extra></extra>"; }
        out.push(trace);
      });
    });
    return out;
  }

  function layout(data) {
    var plot = data.plot, horizontal = plot.type === "hbar";
    var shape = { margin: { l: horizontal ? 180 : 50, r: 16, t: 8, b: 60 }, height: horizontal ? Math.max(320, 26 * data.rows.length + 80) : 340,
      legend: { orientation: "h", y: -0.25 }, font: { family: "system-ui, sans-serif", size: 13, color: "#1f2937" },
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", hoverlabel: { namelength: -1 } };
    if (plot.stacked) { shape.barmode = "stack"; } else if (plot.type !== "line") { shape.barmode = "group"; }
    if (plot.type === "heatmap") { shape.yaxis = { automargin: true }; shape.xaxis = { title: { text: "hour (UTC)" } }; }
    if (horizontal) { shape.yaxis = { automargin: true, autorange: "reversed" }; shape.xaxis = { rangemode: "tozero" }; }
    else if (plot.type !== "heatmap") { shape.yaxis = { rangemode: "tozero", ticksuffix: plot.percent ? " %" : "" };
      if (plot.range) { shape.yaxis.range = plot.range; } shape.xaxis = { automargin: true }; }
    return shape;
  }

  function table(card, data) {
    var node = card.querySelector("table");
    node.textContent = "";
    var head = el("thead"), row = el("tr");
    data.columns.forEach(function (name) { var th = el("th", null, name); th.scope = "col"; row.appendChild(th); });
    head.appendChild(row); node.appendChild(head);
    var body = el("tbody");
    data.rows.forEach(function (values) {
      var tr = el("tr");
      values.forEach(function (value, i) {
        var td = el("td");
        var name = data.columns[i];
        if (name === "link" && typeof value === "string" && value.indexOf("/dashboards/customers/") === 0) {
          var a = el("a", null, "open"); a.href = value; td.appendChild(a);
        } else if (Array.isArray(value)) {
          var top = Math.max.apply(null, value.concat([1]));
          td.className = "spark"; td.textContent = value.map(function (v) { return SPARK[Math.round(7 * v / top)]; }).join("");
          td.title = value.join(", ") + " (oldest week first)"; td.setAttribute("aria-label", td.title);
        } else {
          if (typeof value === "string") { td.className = "text"; }
          td.textContent = value === null || value === undefined ? "–" : String(value);
        }
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    node.appendChild(body);
  }

  function query() {
    var q = new URLSearchParams();
    ["from", "to", "channel", "area", "status"].forEach(function (k) { if (params.get(k)) { q.set(k, params.get(k)); } });
    return q.toString();
  }

  function load(card) {
    var endpoint = card.getAttribute("data-endpoint"), q = query();
    var url = endpoint + (q ? "?" + q : "");
    card.querySelector("a.csv").href = endpoint + "?" + (q ? q + "&" : "") + "format=csv";
    var json = card.querySelector("a.json"); if (json) { json.href = url; }
    return fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } }).then(function (response) {
      return response.json().then(function (data) {
        if (!response.ok) { throw new Error(data.message || ("The console answered " + response.status)); }
        return data;
      });
    }).then(function (data) {
      drawn[card.getAttribute("data-chart")] = { data: data };
      card.querySelector("h2").textContent = data.title;
      card.querySelector(".description").textContent = data.description;
      card.querySelector(".notes").textContent = (data.notes || []).join(" ");
      table(card, data);
      var plot = card.querySelector(".plot"), empty = card.querySelector(".empty");
      if (data.empty || !data.rows.length) {
        empty.textContent = data.empty || "Nothing to show for these filters.";
        empty.hidden = false; plot.hidden = true; card.setAttribute("data-state", "empty");
      } else {
        empty.hidden = true; plot.hidden = false;
        // No mode bar: the CSV link is the export, and hover shows every number.
        return Plotly.newPlot(plot, traces(data), layout(data), { responsive: true, displayModeBar: false }).then(function () {
          card.setAttribute("data-state", "drawn");
        });
      }
    }).catch(function (error) {
      var empty = card.querySelector(".empty");
      empty.textContent = "This chart could not load: " + error.message; empty.hidden = false;
      card.querySelector(".plot").hidden = true; card.setAttribute("data-state", "error");
    }).then(function () { card.setAttribute("aria-busy", "false"); });
  }

  function options(select, rows, text, none) {
    select.textContent = "";
    rows.forEach(function (r) { var o = el("option", null, text(r)); o.value = r[0]; select.appendChild(o); });
    if (!rows.length) { var o = el("option", null, none); o.value = ""; select.appendChild(o); }
    select.disabled = !rows.length;  // and its form's button: nothing to choose, nothing to send
    select.form.querySelector("button").disabled = !rows.length;
  }

  function post(path, body) {
    return fetch(path, { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf, "Accept": "application/json" }, body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) { throw new Error(data.message || ("The console answered " + response.status)); }
        return data;
      });
    });
  }

  function wire(formId, path, fields) {
    var form = document.getElementById(formId);
    if (!form) { return; }
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var body = {};
      fields.forEach(function (f) { body[f] = form.elements[f].value; });
      var button = form.querySelector("button"); button.disabled = true;
      post(path, body).then(function (data) { say(data.message); }).catch(function (e) { say(e.message, true); })
        .then(function () { button.disabled = false; });
    });
  }

  var cards = Array.prototype.slice.call(document.querySelectorAll(".chart[data-endpoint]"));
  Promise.all(cards.map(load)).then(function () {
    document.body.setAttribute("data-charts", "loaded");
    var themes = drawn.themes && drawn.themes.data, gaps = drawn.gaps && drawn.gaps.data;
    if (themes && document.getElementById("s-theme")) {
      options(document.getElementById("s-theme"), themes.rows, function (r) { return r[0] + " " + r[1] + " (" + r[2] + ")"; },
        "No themes for these filters");
    }
    if (gaps && document.getElementById("g-gap")) {
      options(document.getElementById("g-gap"), gaps.rows, function (r) { return r[0] + " " + r[1]; }, "No open FAQ gaps for these filters");
    }
  });
  wire("status-form", "/api/dashboards/ideas/status", ["theme", "status", "note"]);
  wire("gap-form", "/api/dashboards/ideas/gaps/accept", ["gap", "question", "answer"]);
  Array.prototype.forEach.call(document.querySelectorAll("[data-at]"), function (node) {
    node.textContent = new Date(parseFloat(node.getAttribute("data-at")) * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC";
  });
})();
