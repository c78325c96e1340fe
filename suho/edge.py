"""Limits every request's input meets at the edge, before a view, a service or the database sees it: JSON depth and
NUL characters, pagination bounds, dates. A breach is a clear 400 in the API's error format, never a 500
(issue 15, finding 12; docs/decisions/0013-edge-limits-metrics-access-csp.md).

Why these: Python's JSON decoder recurses once per nesting level and dies with RecursionError near 1,000 levels;
PostgreSQL's text and jsonb cannot hold U+0000; LIMIT and OFFSET are bigints; Python's dates end at year 9999, so
"until the end of 9999-12-31" overflows. The bounds are far beyond any real use (the deepest document Suho
understands is 3 levels; its first rows are from the 2020s).
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any, Final

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers
from rest_framework.exceptions import ParseError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import JSONParser

JSON_MAX_DEPTH: Final = 32
PAGE_MAX_LIMIT: Final = 1_000
PAGE_MAX_OFFSET: Final = 1_000_000_000
DATE_MIN: Final = date(1970, 1, 1)
DATE_MAX: Final = date(2999, 12, 31)

JSON_TOO_DEEP = "JSON nested deeper than {limit} levels."
JSON_NUL = "JSON strings may not contain the NUL character (\\u0000)."
JSON_CONSTANT = "{name} is not a number."
JSON_INVALID = "JSON parse error - {error}"
PAGE_LIMIT_INVALID = "must be a whole number from 1 to {limit}."
PAGE_OFFSET_INVALID = "must be a whole number from 0 to {limit}."
DATE_OUT_OF_RANGE = "must be between {min} and {max}."


class EdgeInputError(ValueError):
    """Input past an edge limit; the message says which."""


def _reject_constant(name: str) -> None:
    raise EdgeInputError(JSON_CONSTANT.format(name=name))


def json_loads(text: str | bytes) -> Any:
    """Strict JSON (no NaN or Infinity) at most JSON_MAX_DEPTH deep, no NUL in any key or string. Raises
    EdgeInputError for those, ValueError (JSONDecodeError, UnicodeDecodeError) for text that is not JSON."""
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise EdgeInputError(JSON_TOO_DEEP.format(limit=JSON_MAX_DEPTH)) from None
    _json_check(data, 1)
    return data


def _json_check(value: Any, depth: int) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise EdgeInputError(JSON_NUL)
    elif isinstance(value, dict | list):
        if depth > JSON_MAX_DEPTH:
            raise EdgeInputError(JSON_TOO_DEEP.format(limit=JSON_MAX_DEPTH))
        for key in value if isinstance(value, dict) else ():
            if "\x00" in key:
                raise EdgeInputError(JSON_NUL)
        for item in value.values() if isinstance(value, dict) else value:
            _json_check(item, depth + 1)


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser through json_loads: too deep, NUL or not JSON is a ParseError (400 invalid_request)."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json_loads(stream.read().decode(encoding))
        except ValueError as exc:
            raise ParseError(JSON_INVALID.format(error=exc)) from None


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    """`?limit=` 1–PAGE_MAX_LIMIT and `?offset=` 0–PAGE_MAX_OFFSET, whole numbers; anything else is a 400 naming
    the parameter (DRF's own falls back to the default for junk and passes a huge limit on to PostgreSQL)."""

    max_limit = PAGE_MAX_LIMIT

    def get_limit(self, request):
        raw = request.query_params.get(self.limit_query_param)
        if raw is None:
            return self.default_limit
        return _bounded_int(self.limit_query_param, raw, 1, PAGE_MAX_LIMIT, PAGE_LIMIT_INVALID)

    def get_offset(self, request):
        raw = request.query_params.get(self.offset_query_param)
        if raw is None:
            return 0
        return _bounded_int(self.offset_query_param, raw, 0, PAGE_MAX_OFFSET, PAGE_OFFSET_INVALID)


def _bounded_int(name: str, raw: str, low: int, high: int, message: str) -> int:
    text = raw.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(high)) and low <= int(text) <= high):
        raise serializers.ValidationError({name: [message.format(limit=high)]})
    return int(text)


def date_bounded(value: date | datetime) -> None:
    """Validator for date and datetime inputs (Django forms and DRF fields): DATE_MIN to DATE_MAX, so arithmetic
    on them (a day's end, a range's default start) cannot leave Python's or PostgreSQL's range."""
    day = value.date() if isinstance(value, datetime) else value  # the date as written: a shift could overflow
    if not DATE_MIN <= day <= DATE_MAX:
        raise DjangoValidationError(DATE_OUT_OF_RANGE.format(min=DATE_MIN, max=DATE_MAX), code="date_out_of_range")
