"""Signal intake over NATS (issue 6 item 1): the ML engine's second path, request-reply on `ml.signals`.

The request is the seed's JSON (§5.2), exactly as `POST /api/signals/` takes it, with the tenant's ML-engine key in
the `Authorization: Bearer suho_ml_…` header (the tenant comes from the key, never from the payload). The reply is
`{"created": bool, "broadcast_id": …, "signals": [...]}` or `{"error": {"code", "message"}}` with the REST codes.
Workers share the subject through a queue group, so any number of them can serve it. The subject is outside
`mt5.>`: no JetStream stream captures it (a stream would answer the request with its own ack).
"""

from __future__ import annotations

import asyncio
import json
import logging

import nats
from django.conf import settings
from rest_framework.utils.encoders import JSONEncoder

from signals.serializers import SignalInputSerializer, SignalOutputSerializer
from signals.services import SignalInvalid, ml_engine_key_verify, signal_submit
from suho.api_errors import INVALID_REQUEST, error_body, validation_message
from suho.asyncdb import db_thread
from suho.bus import nats_servers
from suho.edge import EdgeInputError, json_loads

log = logging.getLogger(__name__)

SUBJECT = "ml.signals"
QUEUE = "suho-signal-intake"
MAX_REQUEST_BYTES = 64 * 1024
NOT_AUTHENTICATED = "Send the tenant's ML engine key as `Authorization: Bearer suho_ml_…`."
NOT_JSON = "The request is not a JSON object."
TOO_LARGE = f"The request is larger than {MAX_REQUEST_BYTES} bytes."


def signal_intake_handle(data: bytes, headers: dict | None) -> dict:
    """One request → its reply body. Synchronous (database work): the server runs it in a worker thread."""
    authorization = (headers or {}).get("Authorization", "")
    scheme, _, credential = authorization.partition(" ")
    key = ml_engine_key_verify(key=credential.strip()) if scheme.lower() == "bearer" else None
    if key is None:
        return error_body("not_authenticated", NOT_AUTHENTICATED)
    if len(data) > MAX_REQUEST_BYTES:
        return error_body(INVALID_REQUEST, TOO_LARGE)
    try:
        payload = json_loads(data)
    except EdgeInputError as exc:
        return error_body(INVALID_REQUEST, str(exc))
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        return error_body(INVALID_REQUEST, NOT_JSON)
    serializer = SignalInputSerializer(data=payload)
    if not serializer.is_valid():
        return error_body(INVALID_REQUEST, validation_message(serializer.errors))
    try:
        submission = signal_submit(
            tenant_id=key.tenant_id, account_id=serializer.validated_data["account_id"], payload=serializer.spec(),
            source="ml", client_signal_id=serializer.validated_data["signal_id"],
            actor=f"ml-engine:{key.label or key.id}",
        )  # fmt: skip
    except SignalInvalid as exc:
        return error_body(exc.code, exc.message)
    return {
        "created": submission.created,
        "broadcast_id": submission.broadcast_id,
        "signals": SignalOutputSerializer(submission.signals, many=True).data,
    }


async def signal_intake_serve(
    *, stop: asyncio.Event, ready: asyncio.Event | None = None, url: str | None = None
) -> None:
    """Serve `ml.signals` until `stop` is set, then drain (requests in flight are answered). `ready` is set once
    the subscription is registered with the server."""
    connection = await nats.connect(
        nats_servers(url or settings.NATS_URL), name="suho-signal-intake", max_reconnect_attempts=-1
    )

    async def on_request(msg) -> None:
        try:
            reply = await db_thread(signal_intake_handle)(msg.data, msg.headers)
        except Exception:
            log.exception("signal intake failed")
            reply = error_body("internal_error", "The signal could not be processed; try again.")
        if msg.reply:
            await msg.respond(json.dumps(reply, cls=JSONEncoder).encode())

    await connection.subscribe(SUBJECT, queue=QUEUE, cb=on_request)
    await connection.flush()
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        await connection.drain()
