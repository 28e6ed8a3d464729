// llmlens dashboard: the few live parts of its pages. No framework, nothing fetched from elsewhere;
// every page works without it. Text from the store is set with textContent, never parsed as HTML,
// except the table rows the server renders (and escapes) for the request log.
"use strict";

(function () {
  var POLL_MS = 2000;

  function duration(ms) {
    if (ms === null || ms === undefined || isNaN(ms)) return "";
    if (ms < 1) return ms.toFixed(2) + " ms";
    if (ms < 1000) return Math.round(ms) + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(2) + " s";
    return (ms / 60000).toFixed(1) + " min";
  }

  function localTime(ns) {
    if (!ns) return "";
    var d = new Date(ns / 1e6);
    function two(n) { return (n < 10 ? "0" : "") + n; }
    return d.getFullYear() + "-" + two(d.getMonth() + 1) + "-" + two(d.getDate()) + " " +
      two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds());
  }

  // Copy buttons: <button data-copy-target="ID"> copies the text of element ID.
  function copyButtons() {
    document.querySelectorAll("button[data-copy-target]").forEach(function (button) {
      button.addEventListener("click", function () {
        var target = document.getElementById(button.getAttribute("data-copy-target"));
        if (!target) return;
        var text = target.textContent;
        function done() {
          button.setAttribute("data-copied", "true");
          button.textContent = "copied";
          setTimeout(function () { button.textContent = "copy"; }, 1500);
        }
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done, function () { selectAndCopy(target, done, button); });
        } else {
          selectAndCopy(target, done, button);
        }
      });
    });
  }

  // Without the clipboard API (a page not served from localhost over http, or no permission): select
  // the text and copy it the old way; if even that is refused, the text stays selected for Ctrl-C.
  function selectAndCopy(element, done, button) {
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    var copied = false;
    try { copied = document.execCommand("copy"); } catch (e) { copied = false; }
    if (copied) {
      done();
    } else {
      button.setAttribute("data-copied", "selected");
      button.textContent = "selected: press Ctrl-C";
    }
  }

  // Forms with data-confirm ask first (the prune button).
  function confirmForms() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
      });
    });
  }

  // The request log's first page: rows written since it was rendered appear at the top.
  function requestLog() {
    var body = document.getElementById("request-log-rows");
    if (!body || !body.hasAttribute("data-newer-url")) return;
    var url = body.getAttribute("data-newer-url");
    var status = document.getElementById("request-log-live");
    var added = 0;
    function poll() {
      if (document.hidden) return;
      var after = body.getAttribute("data-after") || "0";
      var separator = url.indexOf("?") < 0 ? "?" : "&";
      fetch(url + separator + "after=" + encodeURIComponent(after), {credentials: "same-origin"})
        .then(function (response) {
          if (!response.ok) throw new Error(response.status);
          var latest = response.headers.get("x-latest-id");
          return response.text().then(function (html) { return [html, latest]; });
        })
        .then(function (result) {
          var template = document.createElement("template");
          template.innerHTML = result[0];
          var rows = template.content.querySelectorAll("tr[data-id]");
          if (rows.length) {
            var empty = document.getElementById("request-log-empty");
            if (empty) empty.remove();
            for (var i = rows.length - 1; i >= 0; i--) {
              rows[i].classList.add("row-new");
              body.insertBefore(rows[i], body.firstChild);
            }
            added += rows.length;
            if (status) status.textContent = "live: " + added + " new since this page was opened";
          }
          if (result[1]) body.setAttribute("data-after", result[1]);
          body.setAttribute("data-polled", String(Number(body.getAttribute("data-polled") || 0) + 1));
        })
        .catch(function () {
          if (status) status.textContent = "live: the dashboard is not answering; retrying";
        });
    }
    setInterval(poll, POLL_MS);
  }

  // Live: requests in flight, redrawn from each snapshot of the event stream.
  function liveRequests() {
    var body = document.getElementById("live-rows");
    if (!body || !body.hasAttribute("data-stream-url") || !window.EventSource) return;
    var count = document.getElementById("live-count");
    var status = document.getElementById("live-status");
    var source = new EventSource(body.getAttribute("data-stream-url"));
    var requestsUrl = body.getAttribute("data-requests-url") || "requests";
    var snapshots = 0;
    function cell(row, text, className) {
      var td = document.createElement("td");
      var value = text === null || text === undefined ? "" : String(text);
      if (className === "model") {  // one line, cut if long: the whole name in its title (app.css)
        var span = document.createElement("span");
        span.className = "model";
        span.textContent = value;
        span.title = value;
        td.appendChild(span);
      } else {
        td.textContent = value;
        if (className) td.className = className;
      }
      row.appendChild(td);
    }
    source.addEventListener("snapshot", function (event) {
      var data = JSON.parse(event.data);
      var rows = data.requests || [];
      var fragment = document.createDocumentFragment();
      rows.forEach(function (r) {
        var tr = document.createElement("tr");
        tr.setAttribute("data-trace-id", r.trace_id || "");
        tr.setAttribute("data-span-id", r.span_id || "");
        cell(tr, localTime(r.start_ns));
        cell(tr, duration(r.elapsed_ms), "num");
        cell(tr, r.provider);
        cell(tr, r.request_model, "model");
        cell(tr, r.operation);
        cell(tr, r.route);
        cell(tr, r.stream ? "yes" : "");
        cell(tr, r.chunks, "num");
        cell(tr, duration(r.ttfc_ms), "num");
        cell(tr, (r.hostname || "") + " " + r.pid);
        var td = document.createElement("td");
        var link = document.createElement("a");
        link.href = requestsUrl + (requestsUrl.indexOf("?") < 0 ? "?" : "&") + "trace=" +
          encodeURIComponent(r.trace_id || "");
        var code = document.createElement("code");
        code.textContent = r.trace_id || "";
        link.appendChild(code);
        td.appendChild(link);
        tr.appendChild(td);
        fragment.appendChild(tr);
      });
      if (!rows.length) {
        var tr = document.createElement("tr");
        tr.id = "live-requests-empty";
        tr.className = "empty";
        var td = document.createElement("td");
        td.colSpan = 11;
        td.textContent = "no requests in flight";
        tr.appendChild(td);
        fragment.appendChild(tr);
      }
      body.replaceChildren(fragment);
      snapshots += 1;
      body.setAttribute("data-snapshots", String(snapshots));
      if (count) count.textContent = String(rows.length);
      if (status) status.textContent = "updated " + new Date().toLocaleTimeString();
    });
    source.addEventListener("problem", function (event) {
      if (status) status.textContent = JSON.parse(event.data).error;
    });
    source.addEventListener("error", function () {
      if (status) status.textContent = "reconnecting";
    });
  }

  copyButtons();
  confirmForms();
  requestLog();
  liveRequests();
  document.body.setAttribute("data-loaded", "true");
})();
