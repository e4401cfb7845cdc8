// Live inbox: the page works without this file. When it runs, it listens
// to the server's event stream and swaps in the server-rendered list, so
// new referrals appear without a reload. No inline script: CSP-friendly.
(function () {
  "use strict";
  var list = document.getElementById("inbox-list");
  if (!list || !window.EventSource) {
    return;
  }
  var live = document.getElementById("live");
  // The same paging as the page (page_size), so the list swapped in is
  // the one the page shows.
  var source = new EventSource("/vcs/events" + window.location.search);
  source.addEventListener("inbox", function (e) {
    var current = document.getElementById("inbox-list");
    var before = current ? parseInt(current.getAttribute("data-new") || "0", 10) : 0;
    var holder = document.createElement("div");
    // The fragment is rendered and escaped by the server's html/template.
    holder.innerHTML = e.data;
    var next = holder.firstElementChild;
    if (!next || !current || next.outerHTML === current.outerHTML) {
      // Unchanged (the stream sends the list as it is on connecting):
      // keep the nodes, so a link being clicked stays where it is.
      return;
    }
    current.replaceWith(next);
    var after = parseInt(next.getAttribute("data-new") || "0", 10);
    if (live && after > before) {
      var n = after - before;
      live.textContent = n === 1 ? "1 new referral has arrived." : n + " new referrals have arrived.";
    }
  });
  source.addEventListener("signed-out", function () {
    source.close();
  });
})();
