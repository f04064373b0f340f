"""A request body read as TF Serving reads it (rapidjson), and JSON values echoed in errors as TF Serving echoes them.

TF Serving parses REST bodies with rapidjson (kParseNanAndInfFlag): NaN and Infinity are numbers, a number beyond
a double is an error, and a parse error names rapidjson's reason and the offset. Its messages quote the offending
JSON value (JsonValueToString) and name JSON types by rapidjson's names; the helpers here do the same in every
JSON error message, cutting what they echo short since a request may be megabytes.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

from service.errors import InvalidInputError

_B64 = "b64"
_SHOW_CHARS = 200  # an echoed JSON value is cut here: a request may be megabytes


# ------------------------------------------------------------------------------------------ JSON text


def loads(data: bytes | str) -> Any:
    """Parse a request body; errors read like TF Serving's ("JSON Parse error: ... at offset: N").

    NaN, Infinity and -Infinity are accepted (TF Serving parses with rapidjson's kParseNanAndInfFlag), but a
    number too large for a double (1e400) is refused as rapidjson refuses it, not read as an infinity. Nesting
    is bounded by the parser's recursion guard, turned into a parse error instead of a crash.
    """
    if not data:
        raise InvalidInputError("JSON Parse error: The document is empty")
    try:
        return orjson.loads(data)  # a few times faster on number-heavy bodies; strict where TF Serving is not
    except orjson.JSONDecodeError:
        pass  # NaN/Infinity tokens, a number beyond a double, lone surrogates, deep nesting: decided below
    try:
        if _may_overflow(data):  # rare: only then does every number go through a Python-level check
            return json.loads(data, parse_float=_finite_float, parse_int=_double_sized_int)
        return json.loads(data)
    except _NumberTooBig:
        raise InvalidInputError("JSON Parse error: Number too big to be stored in double.") from None
    except json.JSONDecodeError as error:
        raise InvalidInputError(f"JSON Parse error: {_rapidjson_wording(error)} at offset: {error.pos}") from None
    except UnicodeDecodeError as error:
        raise InvalidInputError(f"JSON Parse error: Invalid encoding in string. at offset: {error.start}") from None
    except RecursionError:
        raise InvalidInputError("JSON Parse error: The document is nested too deeply.") from None
    except ValueError:  # an integer token of more digits than Python converts (4300)
        raise InvalidInputError("JSON Parse error: Number too big to be stored in double.") from None


class _NumberTooBig(Exception):
    """A number token beyond the largest double (rapidjson's kParseErrorNumberTooBig)."""


# A number token reaches 1.8e308 only with an exponent of three or more digits, or with 210 or more digits
# before its exponent (which then has at most two). `_may_overflow` looks for either in a copy of the body with
# every digit made '0' and '+' dropped: 2-3 ms per MB, a tenth of the parse at most, where checking every number
# would add a third to it. It may fire on a string's contents; the check it enables is exact.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789E", b"000000000e")
_OVERFLOW_HINTS = (b"e000", b"0" * 210)


def _may_overflow(data: bytes | str) -> bool:
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    skeleton = raw.translate(_DIGITS_AS_ZERO, b"+")
    return any(hint in skeleton for hint in _OVERFLOW_HINTS)


def _finite_float(token: str) -> float:
    number = float(token)
    if math.isinf(number):  # the tokens NaN/Infinity go to parse_constant, not here
        raise _NumberTooBig
    return number


def _double_sized_int(token: str) -> int:
    """An integer token as Python reads it; one beyond the largest double is refused, as rapidjson (which
    reads integers outside int64/uint64 as doubles) refuses it."""
    number = int(token)
    if len(token) > 300:
        try:
            float(number)
        except OverflowError:
            raise _NumberTooBig from None
    return number


_PARSE_WORDING = {  # Python's json message → rapidjson's, where one clearly corresponds
    "Expecting value": "Invalid value.",
    "Expecting property name enclosed in double quotes": "Missing a name for object member.",
    "Expecting ':' delimiter": "Missing a colon after a name of object member.",
    "Unterminated string starting at": "Missing a closing quotation mark in string.",
    "Invalid \\escape": "Invalid escape character in string.",
    "Invalid \\uXXXX escape": "Incorrect hex digit after \\u escape in string.",
    "Extra data": "The document root must not be followed by other values.",
}


def _rapidjson_wording(error: json.JSONDecodeError) -> str:
    if error.msg == "Expecting value" and not error.doc[error.pos :].strip():
        return "The document is empty." if not str(error.doc).strip() else "Invalid value."
    return _PARSE_WORDING.get(error.msg, error.msg)



def _show(value: Any) -> str:
    """A JSON value as an error message echoes it (TF Serving's JsonValueToString), cut short."""
    text = json.dumps(_pruned(value, 4), ensure_ascii=False, allow_nan=True)
    return text if len(text) <= _SHOW_CHARS else text[: _SHOW_CHARS - 3] + "..."


def _cut(name: str) -> str:
    """A key of the request (an input or feature name) as a message echoes it, cut short like a value."""
    return name if len(name) <= _SHOW_CHARS else name[: _SHOW_CHARS - 3] + "..."


def _pruned(value: Any, depth: int) -> Any:
    """A small copy of `value` to render: a few items per level, a few levels, short strings."""
    if isinstance(value, str):
        return value if len(value) <= _SHOW_CHARS else value[:_SHOW_CHARS]
    if isinstance(value, list):
        if depth <= 0:
            return ["..."] if value else []
        head = [_pruned(item, depth - 1) for item in value[:8]]
        return head + ["..."] if len(value) > 8 else head
    if isinstance(value, dict):
        if depth <= 0:
            return {"...": "..."} if value else {}
        return {str(key)[:_SHOW_CHARS]: _pruned(item, depth - 1) for key, item in list(value.items())[:8]}
    return value


def _json_type(value: Any) -> str:
    """rapidjson's type names, as TF Serving's errors use them."""
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def _shape_text(shape: tuple[int, ...]) -> str:
    return "[" + ",".join(map(str, shape)) + "]"


def _utf8_safe(error: InvalidInputError) -> InvalidInputError:
    """The error, its message made encodable as UTF-8: a string or key it echoes from the request may hold an
    unpaired surrogate (JSON's "\\ud800"), which gRPC details, logs and strict JSON readers cannot take; it is
    written as the six characters \\ud800 instead."""
    text = str(error)
    try:
        text.encode()
    except UnicodeEncodeError:
        return InvalidInputError(text.encode("utf-8", "backslashreplace").decode())
    return error
