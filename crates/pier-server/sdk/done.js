/* Pier payment window: hands the result to the merchant page (iframe parent or popup opener),
 * to the origin recorded when the window was opened, and nowhere else. */
(function () {
  'use strict';
  var b = document.body;
  var origin = b.getAttribute('data-origin');
  var id = b.getAttribute('data-checkout');
  var rsp;
  try { rsp = JSON.parse(b.getAttribute('data-result')); } catch (e) { return; }
  var target = b.getAttribute('data-mode') === 'popup' ? window.opener : window.parent;
  if (!target || target === window || !origin) { return; }
  target.postMessage({ type: 'pier:result', checkout_id: id, rsp: rsp }, origin);
  if (b.getAttribute('data-mode') === 'popup') { setTimeout(function () { window.close(); }, 50); }
})();
