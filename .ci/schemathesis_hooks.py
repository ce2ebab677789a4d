"""Schemathesis hooks for Pier: every response must be the i'mport envelope."""
import schemathesis


@schemathesis.check
def envelope(ctx, response, case):
    """Every answer of a REST path (not /metrics, /openapi.json) is {code, message, response}."""
    path = case.operation.path
    if path in ("/metrics", "/openapi.json"):
        return None
    try:
        body = response.json()
    except Exception as e:  # noqa: BLE001
        raise AssertionError(f"not JSON ({response.status_code}): {response.text[:200]!r}") from e
    if not isinstance(body, dict) or not {"code", "message", "response"} <= body.keys():
        raise AssertionError(f"not an envelope ({response.status_code}): {str(body)[:200]}")
    if not isinstance(body["code"], int):
        raise AssertionError(f"code is not an integer: {body['code']!r}")
    if body["message"] is not None and not isinstance(body["message"], str):
        raise AssertionError(f"message is neither null nor a string: {body['message']!r}")
    if response.status_code >= 400 and body["code"] == 0:
        raise AssertionError(f"HTTP {response.status_code} with code 0")
    cc = response.headers.get("cache-control", [""])
    cc = cc[0] if isinstance(cc, list) else cc
    if "no-store" not in cc:
        raise AssertionError(f"missing Cache-Control: no-store ({cc!r})")
    return None
