/* Job log viewer: a fragment #L12 or #L12-L18 (the chat's citations) marks those lines and
 * scrolls them into view; clicking a line number with Shift extends the range. */
(function () {
  "use strict";

  function mark() {
    var match = /^#L(\d+)(?:-L?(\d+))?$/.exec(window.location.hash);
    document.querySelectorAll("tr.anchored").forEach(function (row) { row.classList.remove("anchored"); });
    if (!match) return;
    var from = parseInt(match[1], 10), to = match[2] ? parseInt(match[2], 10) : from;
    if (to < from) { var t = from; from = to; to = t; }
    var first = null;
    for (var n = from; n <= to && n - from < 5000; n++) {
      var row = document.getElementById("L" + n);
      if (!row) continue;
      row.classList.add("anchored");
      if (!first) first = row;
    }
    if (first) first.scrollIntoView({ block: "center" });
  }

  var anchor = null;
  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("td.ln a") : null;
    if (!link) return;
    var n = parseInt(link.textContent, 10);
    if (event.shiftKey && anchor !== null) {
      event.preventDefault();
      window.location.hash = "#L" + Math.min(anchor, n) + "-L" + Math.max(anchor, n);
    } else {
      anchor = n;
    }
  });
  window.addEventListener("hashchange", mark);
  mark();
})();
