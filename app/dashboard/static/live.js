// Live progress for the leakgate dashboard, with no library and no build step.
// Elements marked data-audit-id with a state still in flight (queued, running) are polled
// through GET /dashboard/progress (cookie-authenticated, this tenant's audits only).
// List rows are replaced by the server-rendered row; the audit page updates its progress bar
// and reloads once the audit ends, to show the report. Without this script, the page's
// <noscript> refresh does the same by reloading.
(function () {
  "use strict";
  var POLL_MS = 1500;
  var ACTIVE = { queued: true, running: true };

  function watched() {
    return Array.prototype.filter.call(
      document.querySelectorAll("[data-audit-id]"),
      function (el) { return ACTIVE[el.getAttribute("data-state")]; }
    );
  }

  function updateDetail(el, item) {
    if (item.final) {
      window.location.reload();
      return;
    }
    el.setAttribute("data-state", item.state);
    var bar = el.querySelector("progress");
    if (bar) {
      bar.value = item.progress;
      bar.textContent = Math.round(item.progress * 100) + "%";
    }
    var stage = el.querySelector(".stage");
    if (stage) {
      stage.textContent = Math.round(item.progress * 100) + "% · " + (item.stage || item.state);
    }
    var badge = el.querySelector("[data-role=state]");
    if (badge) {
      badge.textContent = item.state;
      badge.className = "badge badge-" + item.state;
    }
  }

  function updateRow(row, item) {
    var holder = document.createElement("tbody");
    holder.innerHTML = item.row_html;
    var fresh = holder.querySelector("tr");
    if (fresh) row.replaceWith(fresh);
  }

  function poll() {
    var elements = watched();
    if (!elements.length) return;
    var query = elements.map(function (el) {
      return "id=" + encodeURIComponent(el.getAttribute("data-audit-id"));
    }).join("&");
    fetch("/dashboard/progress?" + query, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (response.status === 401) {
          window.location.href = "/dashboard/login";
          return null;
        }
        return response.ok ? response.json() : null;
      })
      .then(function (data) {
        if (data) {
          var byId = {};
          data.audits.forEach(function (item) { byId[item.id] = item; });
          elements.forEach(function (el) {
            var item = byId[el.getAttribute("data-audit-id")];
            if (!item) return;
            if (el.tagName === "TR") updateRow(el, item); else updateDetail(el, item);
          });
        }
      })
      .catch(function () { /* a missed poll is retried on the next tick */ })
      .then(function () {
        if (watched().length) window.setTimeout(poll, POLL_MS);
      });
  }

  document.documentElement.setAttribute("data-live", "on");
  window.setTimeout(poll, POLL_MS);
})();
