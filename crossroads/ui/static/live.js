// crossroads ui: new runs appear in the runs list while a flow or `crossroads serve` writes to the DB.
// Polls /api/runs?since=<newest start>&<the page's filters> every few seconds and adds the rows it has not
// shown yet at the top. The page works without this script (reload to see new runs).
(function () {
  "use strict";
  var table = document.getElementById("runs");
  if (!table) { return; }
  var body = table.tBodies[0];
  var since = parseFloat(table.getAttribute("data-since")) || 0;
  var indicator = document.getElementById("live");
  var period = 2000;

  function cell(tr, text, cls) {
    var td = document.createElement("td");
    if (cls) { td.className = cls; }
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }

  function row(r) {
    var tr = document.createElement("tr");
    tr.setAttribute("data-run-id", r.id);
    tr.className = "new";
    var td = document.createElement("td");
    var a = document.createElement("a");
    a.className = "run-link";
    a.href = "/runs/" + encodeURIComponent(r.id);
    a.textContent = r.id.slice(0, 12);
    td.appendChild(a);
    tr.appendChild(td);
    cell(tr, r.flow);
    cell(tr, r.status, "status-" + r.status);
    cell(tr, String(r.steps));
    cell(tr, String(r.decisions));
    cell(tr, Number(r.cost_usd).toFixed(6));
    cell(tr, r.started);
    cell(tr, r.input);
    return tr;
  }

  function poll() {
    var params = new URLSearchParams(window.location.search);
    params.delete("limit");
    params.set("since", String(since));
    fetch("/api/runs?" + params.toString(), { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (resp) { return resp.ok ? resp.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        if (indicator) { indicator.hidden = false; }
        var empty = body.querySelector("td.muted");
        var runs = data.runs.slice().reverse();  // oldest first, each inserted at the top
        for (var i = 0; i < runs.length; i++) {
          var r = runs[i];
          var old = body.querySelector('tr[data-run-id="' + CSS.escape(r.id) + '"]');
          if (old) {  // already shown: refresh its status (a running run may have ended)
            var st = old.children[2];
            if (st && st.textContent !== r.status) { st.textContent = r.status; st.className = "status-" + r.status; }
            continue;
          }
          if (empty) { empty.parentNode.remove(); empty = null; }
          body.insertBefore(row(r), body.firstChild);
          if (r.started_at > since) { since = r.started_at; }
        }
      })
      .catch(function () { /* the server is restarting or gone: try again next time */ })
      .then(function () { window.setTimeout(poll, period); });
  }

  window.setTimeout(poll, period);
}());
