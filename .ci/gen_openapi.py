#!/usr/bin/env python3
"""Generates crates/pier-server/openapi.json: Pier's OpenAPI 3 document of the i'mport (PortOne
V1) REST API it serves or will serve (spec rest-api.md §3). Run from the repository root after
editing; the JSON is committed (the server embeds it)."""
import json, os

S = lambda t, **kw: dict(type=t, **kw)
STR = lambda mx=None, **kw: S("string", **({"maxLength": mx} if mx else {}), **kw)
INT = lambda **kw: S("integer", format="int64", **kw)
AMOUNT = INT(minimum=0, maximum=1_000_000_000_000, description="KRW, an integer")
PAY_AMOUNT = INT(minimum=1, maximum=1_000_000_000_000, description="KRW, an integer greater than 0")
BOOL = S("boolean")

def envelope(resp_ref=None):
    r = {"$ref": f"#/components/schemas/{resp_ref}"} if resp_ref else {}
    return {
        "type": "object",
        "required": ["code", "message", "response"],
        "properties": {
            "code": {"type": "integer", "description": "0 success; 1 refused by Pier; -1 error or PG refusal"},
            "message": {"type": "string", "nullable": True},
            "response": dict(r, nullable=True) if r else {"nullable": True},
        },
    }

def responses(ref=None, extra=()):
    ok = {"description": "Envelope (code 0 = success; code 1/-1 = refusal with HTTP 200)",
          "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{'Env' + ref if ref else 'Envelope'}"}}}}
    err = lambda d: {"description": d, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}}}
    out = {"200": ok, "400": err("Bad parameters"), "401": err("Missing, expired or invalid token")}
    for code in extra:
        out[code] = err({"404": "Not found", "207": "Some of the asked ids were found",
                         "409": "A request with the same Idempotency-Key is in progress",
                         "413": "Body too large", "422": "Idempotency-Key reused with a different request",
                         "429": "Too many failed attempts", "503": "Temporarily unavailable",
                         "501": "Not implemented"}[code])
    return out

def body(props, required=()):
    schema = {"type": "object", "properties": props, "required": list(required)}
    return {"required": bool(required), "content": {
        "application/json": {"schema": schema},
        "application/x-www-form-urlencoded": {"schema": schema},
    }}

def path_param(name, mx=80):
    return {"name": name, "in": "path", "required": True, "schema": STR(mx, minLength=1)}

def q(name, schema, required=False, desc=None):
    p = {"name": name, "in": "query", "required": required, "schema": schema}
    if desc: p["description"] = desc
    return p

IDEM = {"name": "Idempotency-Key", "in": "header", "required": False, "schema": STR(255, minLength=1),
        "description": "Stripe-style idempotency key: the same key and body replay the first answer."}
STATUS = STR(enum=["ready", "paid", "failed", "cancelled"])
SORTING = q("sorting", STR(enum=["-started", "started", "-paid", "paid", "-updated", "updated"]))
PAGE = [q("page", INT(minimum=1, maximum=1_000_000)), q("limit", INT(minimum=1, maximum=1000))]

BUYER = {k: STR(mx) for k, mx in [("buyer_name", 16), ("buyer_email", 64), ("buyer_tel", 16), ("buyer_addr", 128), ("buyer_postcode", 8)]}
ORDER = {"merchant_uid": STR(40, minLength=1, pattern="^[A-Za-z0-9_\\-]{1,40}$"), "amount": PAY_AMOUNT, "currency": STR(3), "tax_free": AMOUNT,
         "vat_amount": AMOUNT, "name": STR(40), "card_quota": INT(minimum=0, maximum=0),
         "custom_data": STR(), "notice_url": STR(2000, pattern="^https?://[a-z0-9.]{1,30}/[a-z0-9/]{0,30}$"), "pg": STR(80, enum=["jtnet"]), **BUYER}
CARD = {"card_number": STR(30, description="dddd-dddd-dddd-dddd", pattern="^[0-9]{4}-[0-9]{4}-[0-9]{4}-[0-9]{2,4}$"),
        "expiry": STR(10, description="YYYY-MM", pattern="^20[3-9][0-9]-(0[1-9]|1[0-2])$"),
        "birth": STR(12, description="YYMMDD or a 10-digit business number", pattern="^[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|[12][0-9])$"),
        "pwd_2digit": STR(2, pattern="^[0-9]{2}$")}
SCHEDULE_ITEM = {"type": "object", "required": ["merchant_uid", "schedule_at", "amount"],
                 "properties": {"merchant_uid": STR(40, minLength=1), "schedule_at": INT(), "amount": AMOUNT,
                                "currency": STR(3), "name": STR(40), "tax_free": AMOUNT, "vat_amount": AMOUNT,
                                "custom_data": STR(), "notice_url": STR(2000), **BUYER}}

paths = {}
def op(method, path, summary, ref=None, params=(), req=None, extra=(), tag="payments", auth=True):
    o = {"summary": summary, "tags": [tag], "responses": responses(ref, extra)}
    ps = list(params)
    if method in ("post", "put", "delete") and auth:
        ps.append(IDEM)
    if ps: o["parameters"] = ps
    if req: o["requestBody"] = req
    if not auth: o["security"] = []
    paths.setdefault(path, {})[method] = o

op("post", "/users/getToken", "Issue (or reuse) an access token", "Auth",
   req=body({"imp_key": STR(200, minLength=1), "imp_secret": STR(200, minLength=1)}, ["imp_key", "imp_secret"]),
   extra=["429"], tag="auth", auth=False)
op("get", "/users/pg", "The merchant's PG channels", "Any", tag="auth")
op("get", "/payments/{imp_uid}", "One payment", "Payment", [path_param("imp_uid", 100)], extra=["404"])
op("get", "/payments", "Payments by imp_uid[] / merchant_uid[] (100 at most)", "Payments",
   [q("imp_uid[]", S("array", items=STR(100), maxItems=100)), q("merchant_uid[]", S("array", items=STR(40), maxItems=100))],
   extra=["207", "404"])
for suffix, extra_params in [("", []), ("/{payment_status}", [{"name": "payment_status", "in": "path", "required": True, "schema": STATUS}])]:
    op("get", "/payments/find/{merchant_uid}" + suffix, "The first (or latest of a status) attempt of a merchant_uid",
       "Payment", [path_param("merchant_uid", 40)] + extra_params + [SORTING], extra=["404"])
    op("get", "/payments/findAll/{merchant_uid}" + suffix, "Every attempt of a merchant_uid", "PagedPayments",
       [path_param("merchant_uid", 40)] + extra_params + PAGE + [SORTING], extra=["404"])
op("get", "/payments/status/{payment_status}", "Payments by status and period", "PagedPayments",
   [{"name": "payment_status", "in": "path", "required": True, "schema": STR(enum=["all", "ready", "paid", "failed", "cancelled"])}]
   + PAGE + [q("from", INT(minimum=0)), q("to", INT(minimum=0)), SORTING])
op("post", "/payments/cancel", "Full or partial cancel (refund)", "Payment",
   req=body({"imp_uid": STR(100), "merchant_uid": STR(40), "amount": AMOUNT, "tax_free": AMOUNT, "vat_amount": AMOUNT,
             "checksum": AMOUNT, "reason": STR(200), "refund_holder": STR(20), "refund_bank": STR(4),
             "refund_account": STR(40), "refund_tel": STR(20), "enable_webhook": BOOL}), extra=["404"])
op("get", "/payments/{imp_uid}/balance", "What remains of a payment, by part (OAS PaymentBalanceResponseAnnotation)", "Balance",
   [path_param("imp_uid", 100)], extra=["404"])
op("post", "/payments/prepare", "Pre-register the amount of a merchant_uid", "Prepare",
   req=body({"merchant_uid": STR(40, minLength=1), "amount": AMOUNT, "currency": STR(3)}, ["merchant_uid", "amount"]))
op("put", "/payments/prepare", "Change a pre-registered amount", "Prepare",
   req=body({"merchant_uid": STR(40, minLength=1), "amount": AMOUNT, "currency": STR(3)}, ["merchant_uid", "amount"]), extra=["404"])
op("get", "/payments/prepare/{merchant_uid}", "A pre-registered amount", "Prepare", [path_param("merchant_uid", 40)], extra=["404"])
op("post", "/subscribe/payments/onetime", "Key-in card payment (optionally storing a billing key)", "Payment",
   req=body({**ORDER, **CARD, "customer_uid": STR(80), "customer_id": STR(80)}, ["merchant_uid", "amount", "card_number", "expiry"]),
   extra=["409", "422"], tag="subscribe")
op("post", "/subscribe/payments/again", "Charge a billing key", "Payment",
   req=body({**ORDER, "customer_uid": STR(80, minLength=1)}, ["customer_uid", "merchant_uid", "amount"]),
   extra=["409", "422"], tag="subscribe")
op("post", "/subscribe/payments/schedule", "Register scheduled payments", "Schedules",
   req={"required": True, "content": {"application/json": {"schema": {"type": "object", "required": ["customer_uid", "schedules"],
        "properties": {"customer_uid": STR(80, minLength=1), "customer_id": STR(80), "checking_amount": AMOUNT, **CARD,
                       "schedules": S("array", items=SCHEDULE_ITEM, minItems=1, maxItems=100)}}}}}, tag="subscribe")
op("get", "/subscribe/payments/schedule", "Schedules by time window", "PagedSchedules",
   [q("schedule_from", INT(minimum=0), True), q("schedule_to", INT(minimum=0), True),
    q("schedule_status", STR(enum=["scheduled", "executed", "revoked"]))] + PAGE, tag="subscribe")
op("post", "/subscribe/payments/unschedule", "Revoke schedules", "Schedules",
   req=body({"customer_uid": STR(80), "merchant_uid": {"oneOf": [STR(40), S("array", items=STR(40), maxItems=100)]}}), tag="subscribe")
op("get", "/subscribe/payments/schedule/{merchant_uid}", "One schedule", "Schedule", [path_param("merchant_uid", 40)], extra=["404"], tag="subscribe")
op("put", "/subscribe/payments/schedule/{merchant_uid}", "Move a pending schedule", "Schedule", [path_param("merchant_uid", 40)],
   req=body({"schedule_at": INT(minimum=0)}, ["schedule_at"]), extra=["404"], tag="subscribe")
op("post", "/subscribe/payments/schedule/{merchant_uid}/reschedule", "Re-arm a failed or revoked schedule", "Schedule",
   [path_param("merchant_uid", 40)], req=body({"schedule_at": INT(minimum=0)}, ["schedule_at"]), extra=["404"], tag="subscribe")
op("post", "/subscribe/payments/schedule/{merchant_uid}/retry", "Execute a failed or revoked schedule now", "Payment",
   [path_param("merchant_uid", 40)], extra=["404"], tag="subscribe")
for p in ["/subscribe/payments/schedule/customers/{customer_uid}", "/subscribe/customers/{customer_uid}/schedules"]:
    op("get", p, "Schedules of one billing key", "PagedSchedules",
       [path_param("customer_uid"), q("from", INT(minimum=0)), q("to", INT(minimum=0)), q("schedule_status", STR())] + PAGE[:1],
       extra=["404"], tag="subscribe")
op("get", "/subscribe/customers", "Billing keys by customer_uid[]", "Customers",
   [q("customer_uid[]", S("array", items=STR(80), maxItems=100), True)], extra=["207", "404"], tag="subscribe")
op("get", "/subscribe/customers/{customer_uid}", "One billing key", "Customer", [path_param("customer_uid")], extra=["404"], tag="subscribe")
op("post", "/subscribe/customers/{customer_uid}", "Issue (or replace) a billing key", "Customer", [path_param("customer_uid")],
   req=body({**CARD, "pg": STR(80), "channel_key": STR(55), "customer_id": STR(80), "customer_name": STR(20),
             "customer_tel": STR(20), "customer_email": STR(200), "customer_addr": STR(200), "customer_postcode": STR(8)},
            ["card_number", "expiry"]), tag="subscribe")
op("delete", "/subscribe/customers/{customer_uid}", "Delete a billing key", "Customer",
   [path_param("customer_uid"), q("reason", STR(200))], extra=["404"], tag="subscribe")
op("get", "/subscribe/customers/{customer_uid}/payments", "Payments made with a billing key", "PagedPayments",
   [path_param("customer_uid")] + PAGE, extra=["404"], tag="subscribe")
op("post", "/vbanks", "Issue a virtual account", "Payment",
   req=body({"merchant_uid": STR(40, minLength=1), "amount": AMOUNT, "vbank_code": STR(4, minLength=1), "vbank_due": INT(minimum=0),
             "vbank_holder": STR(16), "name": STR(40), "channel_key": STR(55), "notice_url": STR(2000), "custom_data": STR(),
             "escrow": {"type": "boolean", "description": "an escrow payment: delivery information via /escrows/logis/{imp_uid} once paid"}, **BUYER},
            ["merchant_uid", "amount", "vbank_code", "vbank_due"]), tag="vbanks")
op("put", "/vbanks/{imp_uid}", "Change an unpaid virtual account", "Payment", [path_param("imp_uid", 100)],
   req=body({"amount": AMOUNT, "vbank_due": INT(minimum=0)}), extra=["404"], tag="vbanks")
op("delete", "/vbanks/{imp_uid}", "Revoke an unpaid virtual account", "Payment", [path_param("imp_uid", 100)], extra=["404"], tag="vbanks")
op("get", "/vbanks/holder", "Account holder lookup (test PG account table, docs/test-cards.md)", "Holder",
   [q("bank_code", STR(4), True), q("bank_num", STR(20), True)], extra=["404"], tag="vbanks")
# PG-specific operations of the official OAS: answered HTTP 200, code -1 "the gateway does not
# offer this" (http/unsupported.rs explains the choice).
NAVER_ACTIONS = ["cancel", "approve-cancel", "ship", "ship-exchanged", "collect-exchanged", "place", "request-return",
                 "approve-return", "reject-return", "withhold-return", "resolve-return", "point", "confirm"]
UNSUPPORTED = [("post", f"/payments/{{imp_uid}}/naver/{a}", ["imp_uid"]) for a in NAVER_ACTIONS] + [
    ("get", "/payments/{imp_uid}/naver/product-orders", ["imp_uid"]),
    ("get", "/payments/{imp_uid}/naver/cash-amount", ["imp_uid"]),
    ("get", "/naver/product-orders/{product_order_id}", ["product_order_id"]),
    ("get", "/naver/reviews", []),
    ("delete", "/kcpquick/members/{member_id}", ["member_id"]),
    ("post", "/kcpquick/members/{member_id}/fido/release", ["member_id"]),
    ("post", "/kcpquick/payment/money", []),
    ("post", "/kcpquick/payment/autopay", []),
    ("delete", "/kcpquick/autopay/{customer_uid}", ["customer_uid"]),
    ("post", "/kcpquick/prepare/{merchant_uid}", ["merchant_uid"]),
    ("put", "/kcpquick/prepare/{merchant_uid}", ["merchant_uid"]),
    ("post", "/benepia/point", []),
    ("post", "/benepia/payment", []),
    ("post", "/payco/orders/status/{imp_uid}", ["imp_uid"]),
    ("post", "/paymentwall/delivery", []),
    ("post", "/partners/receipts/{imp_uid}", ["imp_uid"]),
    ("get", "/tiers/{tier_code}", ["tier_code"]),
]
for method, path, pps in UNSUPPORTED:
    op(method, path, "PG-specific operation: answered code -1, the gateway does not offer it", None,
       [path_param(n) for n in pps], tag="unsupported")
RECEIPT_IN = {"identifier": STR(24, minLength=1, description="phone, business/resident registration or NTS card number (10-18 digits, hyphens allowed); personal data, stored masked"),
              "identifier_type": STR(8, enum=["person", "business", "phone", "taxcard"]), "type": STR(8, enum=["person", "company"]),
              "product_type": STR(8, enum=["real", "digital"]), "tax_free": AMOUNT, "vat_amount": AMOUNT, "buyer_name": STR(16),
              "buyer_email": STR(64), "buyer_tel": STR(16), "corp_reg_no": STR(16)}
op("post", "/receipts/{imp_uid}", "Issue a cash receipt of a paid trans/vbank payment", "Receipt", [path_param("imp_uid", 100)],
   req=body({**RECEIPT_IN, "vat": AMOUNT, "company_tel": STR(16), "company_name": STR(40)}, ["identifier"]), extra=["404"], tag="receipts")
op("get", "/receipts/{imp_uid}", "A payment's cash receipt", "Receipt", [path_param("imp_uid", 100)], extra=["404"], tag="receipts")
op("delete", "/receipts/{imp_uid}", "Cancel a payment's cash receipt", "Receipt", [path_param("imp_uid", 100)], extra=["404"], tag="receipts")
EXT_UID = {"name": "merchant_uid", "in": "path", "required": True, "schema": STR(40, minLength=1, pattern="^[A-Za-z0-9_\\-]{1,40}$")}
op("post", "/receipts/external/{merchant_uid}", "Issue a cash receipt of a sale made outside Pier", "ExternalReceipt", [EXT_UID],
   req=body({**RECEIPT_IN, "amount": PAY_AMOUNT, "name": STR(40), "channel_key": STR(55), "pay_method": STR(8, enum=["trans", "vbank"])},
            ["identifier", "amount"]), extra=["404"], tag="receipts")
op("get", "/receipts/external/{merchant_uid}", "An external cash receipt", "ExternalReceipt", [path_param("merchant_uid", 40)], extra=["404"], tag="receipts")
op("delete", "/receipts/external/{merchant_uid}", "Cancel an external cash receipt", "ExternalReceipt", [path_param("merchant_uid", 40)], extra=["404"], tag="receipts")
PERSON = {"type": "object", "properties": {"name": STR(40), "tel": STR(20), "addr": STR(200), "postcode": STR(10)}, "required": ["name"]}
LOGIS_IN = {"required": True, "content": {"application/json": {"schema": {"type": "object", "required": ["sender", "receiver", "logis"], "properties": {
    "sender": dict(PERSON, properties={**PERSON["properties"], "relationship": STR(20)}), "receiver": PERSON,
    "logis": {"type": "object", "required": ["company", "invoice", "sent_at"], "properties": {
        "company": STR(20, minLength=1, pattern="^[A-Za-z0-9_-]{1,20}$"), "invoice": STR(40, minLength=1, pattern="^[A-Za-z0-9_-]{1,40}$"),
        "sent_at": INT(minimum=0), "receiving_at": STR(20), "address": STR(200)}}}}}}}
for method in ("post", "put"):
    op(method, "/escrows/logis/{imp_uid}", ("Register" if method == "post" else "Change") + " the delivery information of a paid escrow payment",
       "EscrowLogis", [path_param("imp_uid", 100)], req=LOGIS_IN, extra=["404", "409"], tag="escrows")
op("get", "/escrows/logis/{imp_uid}", "The delivery information of an escrow payment", "EscrowLogis", [path_param("imp_uid", 100)],
   extra=["404", "409"], tag="escrows")
# Identity verification (engine/certifications.rs; docs/certifications.md): the test identity
# provider accepts the code 123456 only (docs/test-identities.md).
# The patterns describe values always accepted (separators in phone and birth are accepted too).
CERT_IN = {"name": STR(40, minLength=1, pattern="^[가-힣A-Za-z]{1,20}$"),
           "phone": STR(20, minLength=1, pattern="^01[0-9]{8,9}$", description="mobile number; anything but digits is removed"),
           "birth": STR(10, minLength=6, pattern="^[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|1[0-9]|2[0-8])$",
                        description="YYMMDD (YYYYMMDD accepted); anything but digits is removed"),
           "gender_digit": STR(1, pattern="^[1-8]$", description="7th digit of the resident registration number"),
           "carrier": STR(3, enum=["SKT", "KT", "LGT"]), "is_mvno": BOOL, "company": STR(100),
           "merchant_uid": STR(40, pattern="^[A-Za-z0-9_\\-]{1,40}$"), "pg": STR(60, enum=["danal", "inicis_unified", "inicis", "kcp_v2"]),
           "channel_key": STR(100), "verification_method": STR(3, enum=["SMS"])}
op("post", "/certifications/otp/request", "Start an identity verification by SMS code (no SMS is sent: the test code is 123456)",
   "CertificationOTP", req=body(CERT_IN, ["name", "phone", "birth", "gender_digit", "carrier"]), tag="certifications")
op("post", "/certifications/otp/confirm/{imp_uid}", "Confirm an identity verification with its code", "Certification",
   [path_param("imp_uid", 100)], req=body({"otp": STR(10)}), extra=["404"], tag="certifications")
op("get", "/certifications/{imp_uid}", "An identity verification (the person only once certified)", "Certification",
   [path_param("imp_uid", 100)], extra=["404"], tag="certifications")
op("delete", "/certifications/{imp_uid}", "Delete an identity verification and its personal data", "Certification",
   [path_param("imp_uid", 100)], extra=["404"], tag="certifications")
op("get", "/cards", "Card company codes", "Codes", tag="codes", auth=False)
op("get", "/cards/{code}", "One card company code", "Code", [path_param("code", 10)], extra=["404"], tag="codes", auth=False)
op("get", "/banks", "Bank codes", "Codes", tag="codes", auth=False)
op("get", "/banks/{code}", "One bank code", "Code", [path_param("code", 10)], extra=["404"], tag="codes", auth=False)
op("get", "/admin/unsettled", "The merchant's payment attempts whose PG outcome is still unknown (Pier extension)", "Unsettled",
   [q("stuck", BOOL, desc="only those past the retry limit, needing an operator")], tag="pier")

payment = {"type": "object", "required": ["imp_uid", "merchant_uid", "amount", "status"], "properties": {
    "imp_uid": STR(), "merchant_uid": STR(), "pay_method": STR(nullable=True), "channel": STR(nullable=True),
    "pg_provider": STR(nullable=True), "pg_tid": STR(nullable=True), "amount": INT(), "cancel_amount": INT(),
    "currency": STR(), "status": STR(enum=["ready", "paid", "failed", "cancelled"]), "started_at": INT(),
    "paid_at": INT(), "failed_at": INT(), "cancelled_at": INT(), "card_number": STR(nullable=True),
    "customer_uid": STR(nullable=True), "fail_reason": STR(nullable=True), "cancel_history": S("array", items={"type": "object"}),
}}
def paged(item):
    return {"type": "object", "required": ["total", "previous", "next", "list"], "properties": {
        "total": INT(), "previous": INT(), "next": INT(), "list": S("array", items={"$ref": f"#/components/schemas/{item}"})}}
schemas = {
    "Envelope": envelope(),
    "Any": {"nullable": True},
    "Auth": {"type": "object", "required": ["access_token", "now", "expired_at"],
             "properties": {"access_token": STR(), "now": INT(), "expired_at": INT()}},
    "Payment": payment,
    "Payments": S("array", items={"$ref": "#/components/schemas/Payment"}),
    "PagedPayments": paged("Payment"),
    "Prepare": {"type": "object", "properties": {"merchant_uid": STR(), "amount": INT(), "currency": STR(nullable=True)}},
    "Customer": {"type": "object", "required": ["customer_uid"], "properties": {
        "customer_uid": STR(), "pg_provider": STR(nullable=True), "card_name": STR(nullable=True),
        "card_number": STR(nullable=True), "inserted": INT(), "updated": INT()}},
    "Customers": S("array", items={"$ref": "#/components/schemas/Customer"}),
    "Schedule": {"type": "object", "properties": {"customer_uid": STR(), "merchant_uid": STR(), "schedule_at": INT(),
                                                  "amount": INT(), "schedule_status": STR()}},
    "Schedules": S("array", items={"$ref": "#/components/schemas/Schedule"}),
    "PagedSchedules": paged("Schedule"),
    "Code": {"type": "object", "required": ["code", "name"], "properties": {"code": STR(), "name": STR()}},
    "Codes": S("array", items={"$ref": "#/components/schemas/Code"}),
    "BalancePart": {"type": "object", "required": ["tax_free", "supply", "vat", "service"],
                    "properties": {k: INT() for k in ["tax_free", "supply", "vat", "service"]}},
    "Balance": {"type": "object", "required": ["amount", "cash_receipt", "primary", "secondary", "discount"], "properties": {
        "amount": INT(), **{k: {"$ref": "#/components/schemas/BalancePart"} for k in ["cash_receipt", "primary", "secondary", "discount"]},
        "histories": S("array", items={"type": "object", "required": ["cash_receipt", "primary", "secondary", "discount"], "properties": {
            **{k: {"$ref": "#/components/schemas/BalancePart"} for k in ["cash_receipt", "primary", "secondary", "discount"]}, "created": INT()}}),
        "cancel_pending_amount": INT(description="Pier extension: held by cancels whose PG outcome is not known yet")}},
    "Receipt": {"type": "object", "required": ["imp_uid", "apply_num", "type", "amount", "vat", "applied_at", "status", "cancelled_at"],
                "properties": {"imp_uid": STR(), "receipt_tid": STR(), "apply_num": STR(), "type": STR(), "amount": INT(), "vat": INT(),
                               "receipt_url": STR(), "applied_at": INT(), "cancelled_at": INT(), "status": STR(enum=["issued", "cancelled"])}},
    "ExternalReceipt": {"type": "object", "required": ["merchant_uid", "apply_num", "type", "amount", "vat", "applied_at", "status", "cancelled_at"],
                "properties": {"merchant_uid": STR(), "receipt_tid": STR(), "apply_num": STR(), "type": STR(), "amount": INT(), "vat": INT(),
                               "receipt_url": STR(), "applied_at": INT(), "cancelled_at": INT(), "status": STR(enum=["issued", "cancelled"])}},
    "EscrowLogis": {"type": "object", "required": ["company", "invoice", "sent_at", "applied_at"],
                    "properties": {"company": STR(), "invoice": STR(), "sent_at": INT(), "applied_at": INT()}},
    "Certification": {"type": "object", "required": ["imp_uid", "pg_provider", "foreigner", "certified", "certified_at"], "properties": {
        "imp_uid": STR(), "merchant_uid": STR(nullable=True), "pg_tid": STR(), "pg_provider": STR(),
        "name": STR(nullable=True), "gender": STR(nullable=True, enum=["male", "female", None]),
        "birthday": STR(nullable=True, description="YYYY-MM-DD"), "foreigner": BOOL, "foreigner_v2": S("boolean", nullable=True),
        "phone": STR(nullable=True, description="digits"), "carrier": STR(nullable=True, enum=["SKT", "KT", "LGT", "SKT_MVNO", "KT_MVNO", "LGT_MVNO", None]),
        "certified": BOOL, "certified_at": INT(), "unique_key": STR(88, nullable=True, description="CI"),
        "unique_in_site": STR(64, nullable=True, description="DI, per merchant"), "origin": STR(nullable=True)}},
    "CertificationOTP": {"type": "object", "required": ["imp_uid"], "properties": {"imp_uid": STR()}},
    "Holder": {"type": "object", "required": ["bank_holder"], "properties": {"bank_holder": STR()}},
    "Unsettled": {"type": "object", "required": ["total", "list"], "properties": {"total": INT(), "list": S("array", items={"type": "object"})}},
}
for name in list(schemas):
    if name not in ("Envelope", "Any"):
        schemas["Env" + name] = envelope(name)
schemas["EnvAny"] = envelope()

doc = {
    "openapi": "3.0.3",
    "info": {"title": "Pier", "version": "0.1.0",
             "description": "Pier speaks the i'mport (PortOne V1) REST API: every answer is the envelope "
                            "{code, message, response}. Business refusals are HTTP 200 with code 1, PG refusals "
                            "HTTP 200 with code -1."},
    "servers": [{"url": "/"}],
    "security": [{"ImpToken": []}, {"BearerToken": []}, {"ImpTokenHeader": []}],
    "paths": paths,
    "components": {
        "securitySchemes": {
            "ImpToken": {"type": "apiKey", "in": "header", "name": "Authorization",
                         "description": "The access_token of POST /users/getToken, bare"},
            "BearerToken": {"type": "http", "scheme": "bearer"},
            "ImpTokenHeader": {"type": "apiKey", "in": "header", "name": "X-ImpTokenHeader"},
        },
        "schemas": schemas,
    },
}
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
with open(os.path.join(root, "crates/pier-server/openapi.json"), "w") as f:
    json.dump(doc, f, ensure_ascii=False, indent=1)
    f.write("\n")
print(f"{len(paths)} paths")
