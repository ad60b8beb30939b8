// The console's only script (the CSP allows no inline one): live pending approvals through
// server-sent events, the title's pending count, and the time left counting down.
"use strict";
(function () {
  var list = document.getElementById("pending");
  if (list && window.EventSource) {
    var source = new EventSource("/events");
    source.addEventListener("pending", function (event) {
      var data = JSON.parse(event.data);
      list.innerHTML = data.html; // rendered and escaped by the server, with this session's CSRF token
      document.title = "(" + data.count + ") agentcard console";
    });
  }
  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }
  setInterval(function () {
    document.querySelectorAll("[data-seconds-left]").forEach(function (el) {
      var left = Math.max(0, parseInt(el.getAttribute("data-seconds-left"), 10) - 1);
      el.setAttribute("data-seconds-left", String(left));
      el.textContent = pad(Math.floor(left / 60)) + ":" + pad(left % 60);
    });
  }, 1000);
})();
