"""Time-based one-time passwords (RFC 6238, SHA-1, 6 digits, 30 s) for operators' second factor. Pure functions:
the standard authenticator apps (any that read an `otpauth://` URI) produce the codes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
import time
from urllib.parse import quote

STEP_S = 30
DIGITS = 6
DRIFT_STEPS = 1  # accept the previous and the next code too: clocks and typing take time
ISSUER = "Suho"


def totp_secret_new() -> str:
    return base64.b32encode(secrets.token_bytes(20)).decode()


def totp_code(secret: str, *, at: float | None = None) -> str:
    counter = int((time.time() if at is None else at) // STEP_S)
    digest = hmac.new(base64.b32decode(secret), struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**DIGITS).zfill(DIGITS)


def totp_verify(secret: str, code: str, *, at: float | None = None) -> bool:
    code = (code or "").strip().replace(" ", "")
    if not secret or len(code) != DIGITS or not code.isdigit():
        return False
    now = time.time() if at is None else at
    return any(
        hmac.compare_digest(totp_code(secret, at=now + drift * STEP_S), code)
        for drift in range(-DRIFT_STEPS, DRIFT_STEPS + 1)
    )


def totp_uri(secret: str, *, username: str) -> str:
    label = quote(f"{ISSUER}:{username}")
    return f"otpauth://totp/{label}?secret={secret}&issuer={ISSUER}&digits={DIGITS}&period={STEP_S}"
