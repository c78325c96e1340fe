"""What a client is told when every pooled database connection stays busy: 503 `database_busy` with Retry-After,
in the API's error shape (`{"error": {"code", "message"}}`), never a 500.

psycopg_pool raises `PoolTimeout` after DB_POOL_TIMEOUT_S in the queue; Django wraps it in its OperationalError.
A view's exception reaches `DatabaseBusyMiddleware`; one raised in a middleware reaches `server_error` (handler500).
"""

from __future__ import annotations

import logging
import sys

from django.http import JsonResponse
from django.views import defaults
from psycopg_pool import PoolTimeout

from suho.api_errors import error_body

log = logging.getLogger(__name__)

DATABASE_BUSY = "database_busy"
DATABASE_BUSY_MESSAGE = "The server is busy; retry shortly."
DATABASE_BUSY_RETRY_AFTER_S = 1


def pool_exhausted(exc: BaseException | None) -> bool:
    """True when `exc` is, or was raised from, a pool timeout."""
    seen = 0
    while exc is not None and seen < 10:  # a cause chain is short; the cap only guards against a cycle
        if isinstance(exc, PoolTimeout):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def database_busy_response() -> JsonResponse:
    response = JsonResponse(error_body(DATABASE_BUSY, DATABASE_BUSY_MESSAGE), status=503)
    response["Retry-After"] = str(DATABASE_BUSY_RETRY_AFTER_S)
    return response


class DatabaseBusyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not pool_exhausted(exception):
            return None
        log.warning("database pool exhausted: %s %s answered 503", request.method, request.path)
        return database_busy_response()


def server_error(request):
    """handler500: the pool timeout of a middleware (session, tenant context) is a 503 as well."""
    if pool_exhausted(sys.exc_info()[1]):
        return database_busy_response()
    return defaults.server_error(request)
