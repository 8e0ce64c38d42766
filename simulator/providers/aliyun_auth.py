"""Alibaba Cloud's request signatures, as the carrier checks them (and as anyone may compute them).

Two styles reach an RPC API such as Dysmsapi:

- **ACS3-HMAC-SHA256** (what ``alibabacloud-dysmsapi20170525`` with ``alibabacloud_tea_openapi``
  0.4 sends by default): the parameters in the query string (``SendBatchSms`` puts its JSON
  arrays in a form body), ``x-acs-action``, ``x-acs-version``, ``x-acs-date``,
  ``x-acs-signature-nonce`` and ``x-acs-content-sha256`` headers, and
  ``Authorization: ACS3-HMAC-SHA256 Credential=<AccessKeyId>,SignedHeaders=<h1;h2...>,Signature=<hex>``
  over the canonical request (method, path, sorted query, the signed headers, the body's hash).
- **RPC v1, HMAC-SHA1** (the classic one; the SDK sends it with ``Config(signature_algorithm='v2')``,
  older SDKs and hand-written clients always): ``Action``, ``Version``, ``Format``, ``AccessKeyId``,
  ``Timestamp``, ``SignatureMethod=HMAC-SHA1``, ``SignatureVersion=1.0``, ``SignatureNonce`` and
  ``Signature`` among the parameters (query string or form body), the signature being
  base64(HMAC-SHA1(secret + "&", METHOD + "&%2F&" + enc(sorted, encoded parameters))).

Both are checked against the account's secret; errors come as Alibaba's codes
(``MissingSignature``, ``InvalidAccessKeyId.NotFound``, ``SignatureDoesNotMatch``,
``IncompleteSignature``, ``InvalidTimeStamp.Expired``, ``SignatureNonceUsed``...). Nothing here
raises on odd input: every decoder answers a ``AuthError`` or a value.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from calendar import timegm
from dataclasses import dataclass
from time import strptime
from urllib.parse import quote

ACS3 = "ACS3-HMAC-SHA256"
TIMESTAMP_SKEW = 15 * 60.0  # seconds a request's time may be off the carrier's wall clock (Alibaba's window)


@dataclass
class AuthError(Exception):
    status: int
    code: str
    message: str


@dataclass
class Signed:
    """What a request claims: the key id, and how to check it with a secret."""

    key_id: str
    style: str  # "acs3" | "rpc"
    nonce: str
    timestamp: str
    expected: str  # the signature the request carries
    string_to_sign: str  # computed from the request; signed with the secret to compare

    def matches(self, secret: str) -> bool:
        if self.style == "acs3":
            mine = hmac.new(secret.encode("utf-8", "surrogateescape"), self.string_to_sign.encode("utf-8", "surrogateescape"),
                            hashlib.sha256).hexdigest()
            return hmac.compare_digest(mine, self.expected.lower())
        mine = rpc_sign(self.string_to_sign, secret)
        return hmac.compare_digest(mine.encode(), self.expected.encode("utf-8", "surrogateescape"))


def enc(value: str) -> str:
    """Alibaba's percent-encoding (RFC 3986 unreserved characters kept)."""
    return quote(value, safe="~", encoding="utf-8", errors="surrogateescape")


def rpc_string_to_sign(method: str, params: dict[str, str]) -> str:
    canonical = "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(params.items()) if k != "Signature")
    return f"{method.upper()}&%2F&{enc(canonical)}"


def rpc_sign(string_to_sign: str, secret: str) -> str:
    digest = hmac.new((secret + "&").encode("utf-8", "surrogateescape"), string_to_sign.encode("utf-8", "surrogateescape"),
                      hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def parse_time(value: str) -> float | None:
    """``2026-11-30T19:56:09Z`` (or with milliseconds) as epoch seconds, else None."""
    text = value.strip()
    if len(text) > 40:
        return None
    if "." in text and text.endswith("Z"):
        text = text.split(".", 1)[0] + "Z"
    try:
        return float(timegm(strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
    except (ValueError, OverflowError):
        return None


def claims(method: str, path: str, query: list[tuple[str, str]], form: dict[str, str], headers, body: bytes) -> Signed:
    """The signature a request carries, read from it (nothing checked against a secret yet)."""
    authorization = headers.get("Authorization", "")
    if authorization.startswith(ACS3 + " ") or authorization.startswith("ACS3-"):
        return _acs3(method, path, query, headers, body, authorization)
    params = {**dict(query), **form}
    if "Signature" not in params:
        if authorization:
            raise AuthError(400, "IncompleteSignature", "The request signature does not conform to Aliyun standards"
                            " (unsupported Authorization scheme).")
        raise AuthError(400, "MissingSignature", "Signature is mandatory for this action.")
    if not params.get("AccessKeyId"):
        raise AuthError(400, "MissingAccessKeyId", "AccessKeyId is mandatory for this action.")
    if params.get("SignatureMethod", "HMAC-SHA1") != "HMAC-SHA1":
        raise AuthError(400, "InvalidSignatureMethod.Malformed", "Specified signature method is not valid.")
    if params.get("SignatureVersion", "1.0") != "1.0":
        raise AuthError(400, "UnsupportedSignatureVersion", "Specified signature version is not supported.")
    if not params.get("Timestamp"):
        raise AuthError(400, "MissingTimestamp", "Timestamp is mandatory for this action.")
    if not params.get("SignatureNonce"):
        raise AuthError(400, "MissingSignatureNonce", "SignatureNonce is mandatory for this action.")
    return Signed(params["AccessKeyId"], "rpc", params["SignatureNonce"], params["Timestamp"], params["Signature"],
                  rpc_string_to_sign(method, params))


def _acs3(method, path, query, headers, body, authorization: str) -> Signed:
    scheme, _, rest = authorization.partition(" ")
    if scheme != ACS3:
        raise AuthError(400, "IncompleteSignature", f"The signature algorithm {scheme[:40]!r} is not supported; use {ACS3}.")
    fields = {}
    for piece in rest.split(","):
        name, sep, value = piece.strip().partition("=")
        if sep:
            fields[name] = value
    key_id, signed_headers, signature = fields.get("Credential"), fields.get("SignedHeaders"), fields.get("Signature")
    if not key_id or signed_headers is None or not signature:
        raise AuthError(400, "IncompleteSignature", "The Authorization header needs Credential, SignedHeaders and Signature.")
    names = [h for h in signed_headers.split(";") if h]
    lowered = [h.lower() for h in names]
    for needed in ("x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256"):
        if needed not in lowered or not headers.get(needed):
            raise AuthError(400, "IncompleteSignature", f"The request signature must cover the {needed} header.")
    payload_hash = headers.get("x-acs-content-sha256", "")
    if not hmac.compare_digest(payload_hash.lower().encode("utf-8", "surrogateescape"), hashlib.sha256(body).hexdigest().encode()):
        raise AuthError(400, "SignatureDoesNotMatch", "The x-acs-content-sha256 header is not the SHA-256 of the body.")
    canonical_query = "&".join(f"{k}={enc(v)}" for k, v in sorted(dict(query).items()))
    canonical_headers = "".join(f"{h}:{','.join(sorted(v.strip() for v in headers.getall(h, [])))}\n" for h in sorted(set(lowered)))
    canonical_request = "\n".join([method.upper(), path or "/", canonical_query, canonical_headers,
                                   ";".join(sorted(set(lowered))), payload_hash])
    string_to_sign = f"{ACS3}\n{hashlib.sha256(canonical_request.encode('utf-8', 'surrogateescape')).hexdigest()}"
    return Signed(key_id, "acs3", headers.get("x-acs-signature-nonce", ""), headers.get("x-acs-date", ""), signature,
                  string_to_sign)
