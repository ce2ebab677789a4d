// Pier console: the little script the pages use (served from /console/static/console.js under a
// CSP that allows no inline script). Every page works without it.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // A payment row opens its detail when clicked anywhere (the imp_uid link in it is the
  // keyboard path).
  document.querySelectorAll("tr[data-href]").forEach(function (tr) {
    tr.addEventListener("click", function (e) {
      if (e.target.closest("a, button, input, select, textarea")) return;
      window.location.assign(tr.getAttribute("data-href"));
    });
  });
  // Buttons marked data-once submit their form once (a double click is one refund).
  document.querySelectorAll("button[data-once]").forEach(function (b) {
    var form = b.form;
    if (!form) return;
    form.addEventListener("submit", function () {
      setTimeout(function () { b.disabled = true; }, 0);
    });
  });
});
