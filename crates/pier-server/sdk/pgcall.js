// Pier: opens a PG's window through the PG's own browser script (Toss's SDK). The call is in
// data-call of <body>, written by Pier from the connector's answer. If the script is missing or
// the call fails in the browser (the buyer closed the PG's layer), the page goes to the PG
// return's fail URL with a code, as the PG's own fail redirect would.
(function () {
  'use strict';
  var call;
  try {
    call = JSON.parse(document.body.getAttribute('data-call'));
  } catch (e) {
    return;
  }
  function fail(code, message) {
    var u = new URL(call.fail_url);
    u.searchParams.set('code', String(code || 'PG_SCRIPT_ERROR').slice(0, 64));
    u.searchParams.set('message', String(message || '').slice(0, 200));
    window.location.replace(u.toString());
  }
  try {
    var init = /^[A-Za-z_][A-Za-z0-9_]*$/.test(call.init) ? window[call.init] : undefined;
    if (typeof init !== 'function') {
      fail('PG_SCRIPT_UNAVAILABLE', 'PG사 결제창을 불러오지 못했습니다.');
      return;
    }
    var pg = init(call.init_arg);
    var r = pg[call.method].apply(pg, call.args);
    if (r && typeof r.catch === 'function') {
      r.catch(function (e) {
        fail(e && e.code, e && e.message);
      });
    }
  } catch (e) {
    fail(e && e.code, e && e.message);
  }
})();
