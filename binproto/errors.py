"""ProtocolError and the exact reasons it carries (tests format the same constants)."""

from binproto.constants import ErrorCode


class ProtocolError(ValueError):
    """A buffer, JSON text or message that is not valid Suho Binary Protocol. The message says precisely why;
    `code` is the ERROR code the server answers with (docs/protocol.md §9): MALFORMED_FRAME unless the reason is an
    unsupported version, an unknown type, an oversized frame or an unknown symbol index."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.MALFORMED_FRAME) -> None:
        super().__init__(message)
        self.code = code


# framing
ERR_NOT_BYTES = "expected bytes, bytearray or memoryview, got {kind}"
ERR_SHORT_HEADER = "frame is {size} bytes, shorter than the 16-byte header"
ERR_TOO_LARGE = "frame is {size} bytes, over the {limit}-byte limit"
ERR_BAD_MAGIC = "bad magic 0x{magic:08x}, expected 0x53554854"
ERR_BAD_VERSION = "unsupported protocol version {version}"
ERR_BAD_TYPE = "unknown message type 0x{msg_type:02x} in version {version}"
ERR_DATA_COUNT = "data count must be 0 in version {version}, got {count}"
ERR_TRAILING = "{size}-byte frame has {extra} bytes after the end of the {name} message"
ERR_TRUNCATED = "frame ends inside {what}: needs {need} bytes at offset {offset}, frame is {size}"
# version 1
ERR_V1_LENGTH = "v1 price stream with {count} records must be {exact} bytes (or {padded} zero-padded), got {size}"
ERR_V1_PADDING = "v1 padding after {count} records is not all zero bytes"
ERR_V1_PRICE = "{what} = {value!r} does not fit v1 fixed point (0 to 42949.67295)"
ERR_V1_FIELD = "{what} = {value!r} cannot be sent in version 1 (it carries only the default {default!r})"
ERR_V2_SERVER_ID = "{what} = {value!r}: server id exists only in version 1"
ERR_V1_ONLY_PRICES = "version 1 carries only PRICE_STREAM, not {name}"
# values
ERR_RANGE = "{what} = {value!r} is outside [{lo}, {hi}]"
ERR_ENUM = "{what} = {value!r} is not a valid {enum}"
ERR_TEXT_UTF8 = "{what} is not valid UTF-8"
ERR_TEXT_NUL = "{what} contains a NUL character"
ERR_TEXT_LENGTH = "{what} is {size} bytes, allowed {lo} to {hi}"
ERR_COUNT = "{what} has {count} items, the limit is {limit}"
ERR_DUPLICATE = "{what} repeats {key!r}"
ERR_TYPE = "{what} must be {expected}, got {kind}"
# price rows
ERR_NOT_PRICE_STREAM = "expected a PRICE_STREAM frame, got {name}"
ERR_NOT_V1 = "expected a version 1 price stream, got version {version} (use decode_price_rows)"
ERR_NO_SYMBOL_TABLE = "a v2 price stream needs the connection's symbol table (symbol_names)"
ERR_UNKNOWN_SYMBOL = "{what} = {index}: no symbol with that index in the connection's symbol table"
# JSON form
ERR_JSON_SYNTAX = "not valid JSON: {reason}"
ERR_JSON_TOO_LARGE = "JSON text is {size} characters, over the {limit} limit"
ERR_JSON_OBJECT = "a JSON message must be an object, got {kind}"
ERR_JSON_TYPE_NAME = "unknown JSON message type {type!r}"
ERR_JSON_MISSING = "{name} lacks {fields}"
ERR_JSON_UNKNOWN = "{name} has unknown fields {fields}"
# connection state
ERR_STATE = "{name} is not allowed from the {side} in state {state}"
ERR_TRANSITION = "no transition from state {state} on {event}"
