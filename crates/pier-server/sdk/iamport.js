/*!
 * Pier browser SDK: a drop-in `window.IMP` (i'mport / PortOne V1 `iamport.js`).
 * Served by Pier at /v1/iamport.js. Plain ES5-style JavaScript, no dependencies.
 *
 *   IMP.init('imp00000001');
 *   IMP.request_pay({ pg: 'jtnet', pay_method: 'card', merchant_uid: 'order_1', amount: 14000 },
 *                   function (rsp) { ... });
 *   IMP.close();
 *   IMP.certification({ merchant_uid: 'cert_1', min_age: 19 }, function (rsp) { ... });
 *
 * The window opens as an overlay iframe on desktop, a popup with `popup: true`, or a full-page
 * redirect on mobile browsers when `m_redirect_url` is given. Results of iframe/popup windows
 * arrive by postMessage from Pier's origin only.
 */
(function (global) {
  'use strict';
  if (global.IMP && global.IMP.__pier) { return; }

  var script = document.currentScript;
  var PIER = (function () {
    try { return new URL(script.src, global.location.href).origin; } catch (e) { return global.location.origin; }
  })();
  var PAY_METHODS = ['card', 'trans', 'phone', 'vbank'];
  var CANCEL_CODE = 'F400';
  var CANCEL_MSG = '사용자가 결제를 취소하였습니다';
  var OUR_KEYS = ['imp_uid', 'merchant_uid', 'imp_success', 'error_code', 'error_msg'];
  var CERT_CANCEL_MSG = '사용자가 본인인증을 취소하였습니다';
  // Certification redirects carry `success` where payments carry `imp_success`.
  var CERT_KEYS = ['imp_uid', 'merchant_uid', 'success', 'error_code', 'error_msg'];

  var userCode = null;
  var tierCode = null;
  var pending = null; // {id, params, callback, mode, overlay, popup, timer, done}

  function isMobile() {
    return /Mobi|Android|iPhone|iPad|iPod/.test(global.navigator.userAgent || '');
  }

  function failure(params, code, msg, impUid) {
    return {
      success: false,
      imp_success: false,
      imp_uid: impUid || null,
      merchant_uid: (params && typeof params === 'object' && params.merchant_uid) || null,
      error_code: code,
      error_msg: msg
    };
  }

  /** m_redirect_url parsed, or null unless it is an http(s) URL (never javascript:, data:, …). */
  function redirectTarget(url) {
    if (typeof url !== 'string' || !url) { return null; }
    var u;
    try { u = new URL(url, global.location.href); } catch (e) { return null; }
    return (u.protocol === 'http:' || u.protocol === 'https:') ? u : null;
  }

  /** m_redirect_url with the result merged into its query; the fragment is kept. null unless
   * m_redirect_url is an http(s) URL. */
  function mergeRedirect(url, rsp, certification) {
    var u = redirectTarget(url);
    if (!u) { return null; }
    (certification ? CERT_KEYS : OUR_KEYS).forEach(function (k) { u.searchParams.delete(k); });
    u.searchParams.append('imp_uid', rsp.imp_uid || '');
    u.searchParams.append('merchant_uid', rsp.merchant_uid || '');
    u.searchParams.append(certification ? 'success' : 'imp_success', rsp.success ? 'true' : 'false');
    if (!rsp.success) {
      u.searchParams.append('error_code', rsp.error_code || '');
      u.searchParams.append('error_msg', rsp.error_msg || '');
    }
    return u.toString();
  }

  /** The checks the SDK makes before any network call (Pier checks them again). */
  function validate(params) {
    if (!userCode) { return ['F0001', 'IMP.init(userCode)로 가맹점 식별코드를 먼저 설정해주세요. (call IMP.init first)']; }
    if (!params || typeof params !== 'object') { return ['F1000', 'request_pay params must be an object']; }
    if (params.merchant_uid === undefined || params.merchant_uid === null || params.merchant_uid === '') {
      return ['F1000', 'merchant_uid is required'];
    }
    if (params.amount === undefined || params.amount === null) { return ['F1000', 'amount is required']; }
    if (typeof params.amount === 'string') { return ['F1000', 'amount must be an integer (not string)']; }
    if (typeof params.amount !== 'number' || !isFinite(params.amount) || Math.floor(params.amount) !== params.amount) {
      return ['F1000', 'amount must be an integer'];
    }
    if (params.amount < 0) { return ['F1000', 'amount is out of range']; }
    if (params.amount === 0 && !params.customer_uid) {
      return ['F1000', 'amount must be greater than 0 (0 is only for issuing a billing key with customer_uid)'];
    }
    var method = params.pay_method || 'card';
    if (PAY_METHODS.indexOf(method) < 0) {
      return ['F1000', 'pay_method "' + method + '" is not offered (offered: ' + PAY_METHODS.join(', ') + ')'];
    }
    if (params.customer_uid && method !== 'card') { return ['F1000', 'customer_uid (billing key) needs pay_method card']; }
    if (params.m_redirect_url !== undefined && params.m_redirect_url !== null && !redirectTarget(params.m_redirect_url)) {
      return ['F1000', 'm_redirect_url must be an absolute http(s) URL'];
    }
    if (params.pg !== undefined && params.pg !== null && typeof params.pg !== 'string') { return ['F1000', 'pg must be a string']; }
    if (typeof params.pg === 'string' && params.pg && !/^[a-z0-9_]+(\.[^\s]+)?$/.test(params.pg)) {
      return ['F1001', 'unknown pg "' + params.pg + '"'];
    }
    return null;
  }

  /** The checks of IMP.certification before any network call (Pier checks them again). */
  function validateCertification(params) {
    if (!userCode) { return ['F0001', 'IMP.init(userCode)로 가맹점 식별코드를 먼저 설정해주세요. (call IMP.init first)']; }
    if (typeof params !== 'object') { return ['F1000', 'certification params must be an object']; }
    if (params.m_redirect_url !== undefined && params.m_redirect_url !== null && !redirectTarget(params.m_redirect_url)) {
      return ['F1000', 'm_redirect_url must be an absolute http(s) URL'];
    }
    if (params.min_age !== undefined && params.min_age !== null &&
        (typeof params.min_age !== 'number' || Math.floor(params.min_age) !== params.min_age || params.min_age < 0)) {
      return ['F1000', 'min_age must be a non-negative integer'];
    }
    return null;
  }

  function cleanup() {
    if (!pending) { return; }
    if (pending.timer) { clearInterval(pending.timer); }
    if (pending.overlay && pending.overlay.parentNode) { pending.overlay.parentNode.removeChild(pending.overlay); }
    if (pending.popup && !pending.popup.closed) { try { pending.popup.close(); } catch (e) { /* ignore */ } }
  }

  /** Hands a result to the merchant: callback, or (redirect mode, no callback) m_redirect_url. */
  function deliver(params, callback, mode, rsp, certification) {
    if (typeof callback === 'function') {
      try { callback(rsp); } catch (e) { setTimeout(function () { throw e; }, 0); }
      return;
    }
    if (params && params.m_redirect_url && (mode === 'redirect' || isMobile())) {
      // Only ever to an http(s) URL: a javascript: (or any other) URL is not navigated to.
      var to = mergeRedirect(params.m_redirect_url, rsp, certification);
      if (to) { global.location.href = to; }
    }
  }

  function finish(rsp) {
    if (!pending || pending.done) { return; }
    var p = pending;
    p.done = true;
    cleanup();
    pending = null;
    deliver(p.params, p.callback, p.mode, rsp, p.certification);
  }

  function post(path, body) {
    return global.fetch(PIER + path, {
      method: 'POST',
      mode: 'cors',
      credentials: 'omit',
      headers: { 'Content-Type': 'text/plain;charset=UTF-8' },
      body: JSON.stringify(body || {})
    }).then(function (r) { return r.json(); });
  }

  function cancelPending() {
    if (!pending || pending.done) { return; }
    var p = pending;
    var local = failure(p.params, CANCEL_CODE, p.certification ? CERT_CANCEL_MSG : CANCEL_MSG, p.impUid);
    if (!p.id) { finish(local); return; }
    var path = p.certification ? '/checkout/certification/cancel/' : '/checkout/cancel/';
    post(path + encodeURIComponent(p.id)).then(function (rsp) {
      finish(rsp && typeof rsp === 'object' ? rsp : local);
    }, function () { finish(local); });
  }

  function onMessage(ev) {
    if (ev.origin !== PIER || !pending || pending.done) { return; }
    var d = ev.data;
    if (!d || typeof d !== 'object' || d.type !== 'pier:result' || d.checkout_id !== pending.id) { return; }
    if (pending.mode === 'iframe' && pending.iframe && ev.source !== pending.iframe.contentWindow) { return; }
    finish(d.rsp);
  }
  global.addEventListener('message', onMessage);

  function showOverlay(url, title) {
    var overlay = document.createElement('div');
    overlay.setAttribute('data-testid', 'pier-overlay');
    overlay.setAttribute('role', 'dialog');
    overlay.setAttribute('aria-modal', 'true');
    var s = overlay.style;
    s.position = 'fixed'; s.left = '0'; s.top = '0'; s.right = '0'; s.bottom = '0';
    s.zIndex = '2147483647'; s.background = 'rgba(0,0,0,0.55)';
    s.display = 'flex'; s.alignItems = 'center'; s.justifyContent = 'center';
    var frameBox = document.createElement('div');
    var b = frameBox.style;
    b.position = 'relative'; b.width = '100%'; b.maxWidth = '480px'; b.height = '100%'; b.maxHeight = '720px';
    b.background = '#fff'; b.borderRadius = '8px'; b.overflow = 'hidden';
    var close = document.createElement('button');
    close.type = 'button';
    close.textContent = '×';
    close.setAttribute('aria-label', title + ' 닫기');
    close.setAttribute('data-testid', 'pier-close');
    var c = close.style;
    c.position = 'absolute'; c.top = '6px'; c.right = '8px'; c.zIndex = '2'; c.border = '0';
    c.background = 'transparent'; c.fontSize = '26px'; c.cursor = 'pointer'; c.lineHeight = '1';
    close.addEventListener('click', cancelPending);
    var iframe = document.createElement('iframe');
    iframe.src = url;
    iframe.title = 'Pier ' + title;
    iframe.setAttribute('data-testid', 'pier-iframe');
    iframe.setAttribute('allow', 'payment');
    var f = iframe.style;
    f.border = '0'; f.width = '100%'; f.height = '100%';
    frameBox.appendChild(close);
    frameBox.appendChild(iframe);
    overlay.appendChild(frameBox);
    document.body.appendChild(overlay);
    pending.overlay = overlay;
    pending.iframe = iframe;
  }

  var IMP = {
    __pier: true,
    version: 'pier-1',
    init: function (code) {
      userCode = typeof code === 'string' ? code : null;
      tierCode = null;
    },
    agency: function (code, tier) {
      userCode = typeof code === 'string' ? code : null;
      tierCode = typeof tier === 'string' ? tier : null;
    },
    request_pay: function (params, callback) {
      var mode = params && params.popup === true ? 'popup'
        : (isMobile() && params && params.m_redirect_url ? 'redirect' : 'iframe');
      var bad = validate(params);
      if (bad) {
        deliver(params, callback, mode, failure(params, bad[0], bad[1]));
        return;
      }
      if (pending) {
        deliver(params, callback, mode, failure(params, 'F1000', '이미 결제창이 열려 있습니다. (a payment window is already open)'));
        return;
      }
      pending = { id: null, params: params, callback: callback, mode: mode, done: false };
      if (mode === 'popup') {
        // Opened synchronously inside the click, then pointed at the window once it exists.
        var w = global.open('', 'pier_checkout', 'width=520,height=760');
        if (!w) {
          var p0 = pending; pending = null;
          deliver(p0.params, callback, mode, failure(params, 'F1000', '팝업이 차단되었습니다. (the popup was blocked)'));
          return;
        }
        pending.popup = w;
        pending.timer = setInterval(function () {
          if (pending && pending.popup && pending.popup.closed) { clearInterval(pending.timer); pending.timer = null; cancelPending(); }
        }, 400);
      }
      var mine = pending;
      post('/checkout/prepare', {
        user_code: userCode,
        tier_code: tierCode,
        mode: mode,
        origin: global.location.origin,
        params: params
      }).then(function (rsp) {
        if (pending !== mine || mine.done) { return; }
        if (!rsp || !rsp.success) {
          finish(rsp && typeof rsp === 'object' ? rsp : failure(params, 'F1000', 'unexpected answer from Pier'));
          return;
        }
        mine.id = rsp.checkout_id;
        mine.impUid = rsp.imp_uid;
        if (mode === 'redirect') {
          global.location.href = rsp.window_url;
        } else if (mode === 'popup') {
          mine.popup.location.href = rsp.window_url;
        } else {
          showOverlay(rsp.window_url, '결제창');
        }
      }, function () {
        if (pending === mine) { finish(failure(params, 'F1000', 'Pier에 연결할 수 없습니다. (network error)')); }
      });
    },
    close: function () { cancelPending(); },
    /** Identity verification in Pier's test identity provider's window, opened like
     * request_pay's (overlay iframe, `popup: true`, or a redirect on mobile with
     * `m_redirect_url`); the result is `{success, imp_uid, merchant_uid, error_code, error_msg}`,
     * to be checked server-side with GET /certifications/{imp_uid}. */
    certification: function (params, callback) {
      params = params === undefined || params === null ? {} : params;
      var mode = params && params.popup === true ? 'popup'
        : (isMobile() && params && params.m_redirect_url ? 'redirect' : 'iframe');
      var bad = validateCertification(params);
      if (bad) {
        deliver(params, callback, mode, failure(params, bad[0], bad[1]), true);
        return;
      }
      if (pending) {
        deliver(params, callback, mode, failure(params, 'F1000', '이미 인증창이 열려 있습니다. (a window is already open)'), true);
        return;
      }
      pending = { id: null, params: params, callback: callback, mode: mode, done: false, certification: true };
      if (mode === 'popup') {
        var w = global.open('', 'pier_certification', 'width=520,height=760');
        if (!w) {
          var p0 = pending; pending = null;
          deliver(p0.params, callback, mode, failure(params, 'F1000', '팝업이 차단되었습니다. (the popup was blocked)'), true);
          return;
        }
        pending.popup = w;
        pending.timer = setInterval(function () {
          if (pending && pending.popup && pending.popup.closed) { clearInterval(pending.timer); pending.timer = null; cancelPending(); }
        }, 400);
      }
      var mine = pending;
      post('/checkout/certification/prepare', {
        user_code: userCode,
        tier_code: tierCode,
        mode: mode,
        origin: global.location.origin,
        params: params
      }).then(function (rsp) {
        if (pending !== mine || mine.done) { return; }
        if (!rsp || !rsp.success) {
          finish(rsp && typeof rsp === 'object' ? rsp : failure(params, 'F1000', 'unexpected answer from Pier'));
          return;
        }
        mine.id = rsp.checkout_id;
        mine.impUid = rsp.imp_uid;
        if (mode === 'redirect') {
          global.location.href = rsp.window_url;
        } else if (mode === 'popup') {
          mine.popup.location.href = rsp.window_url;
        } else {
          showOverlay(rsp.window_url, '본인인증창');
        }
      }, function () {
        if (pending === mine) { finish(failure(params, 'F1000', 'Pier에 연결할 수 없습니다. (network error)')); }
      });
    },
    _mergeRedirect: mergeRedirect
  };

  global.IMP = IMP;
})(window);
