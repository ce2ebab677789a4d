/* The demo shop: request_pay, then verification by Pier's demo backend (imp_uid + amount). */
(function () {
  'use strict';
  var body = document.body;
  var price = Number(body.getAttribute('data-price'));
  IMP.init(body.getAttribute('data-imp-code'));
  var out = document.getElementById('outcome');

  function show(cls, title, lines) {
    out.hidden = false;
    out.className = 'outcome ' + cls;
    out.textContent = '';
    var h = document.createElement('h3');
    h.textContent = title;
    h.setAttribute('data-testid', 'demo-outcome-title');
    out.appendChild(h);
    lines.forEach(function (l) { var p = document.createElement('p'); p.textContent = l; out.appendChild(p); });
  }

  document.getElementById('buy').addEventListener('click', function () {
    var method = document.getElementById('pay-method').value;
    IMP.request_pay({
      pg: 'jtnet',
      pay_method: method,
      merchant_uid: 'demo_' + Date.now(),
      name: 'Pier 머그컵',
      amount: price,
      buyer_name: '홍길동',
      buyer_tel: '010-1234-5678',
      buyer_email: 'buyer@example.com'
    }, function (rsp) {
      if (!rsp.success) {
        show('bad', '결제 실패', [rsp.error_code + ': ' + rsp.error_msg]);
        return;
      }
      fetch('/demo/verify', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ imp_uid: rsp.imp_uid })
      }).then(function (r) { return r.json(); }).then(function (v) {
        if (v.verified) {
          var lines = ['imp_uid: ' + v.imp_uid, '금액: ' + v.amount + '원 (주문 금액과 일치)', '상태: ' + v.status];
          if (v.vbank_num) { lines.push('입금 계좌: ' + v.vbank_name + ' ' + v.vbank_num); }
          show('ok', v.status === 'paid' ? '결제 완료 (서버 검증됨)' : '가상계좌 발급 완료 (서버 검증됨)', lines);
        } else {
          show('bad', '검증 실패', ['상태: ' + v.status + ', 금액: ' + v.amount + ' (기대: ' + v.expected_amount + ')']);
        }
      }, function () { show('bad', '검증 실패', ['verification request failed']); });
    });
  });
})();
