"""JSON text exactly as serde_json writes it, and strict parsing as serde_json reads it.

The echo files are `serde_json::to_string_pretty` output. Python's `json` differs in two ways that
matter for byte-exact files: float spelling (`1e+16` vs serde's ryu `1e16`) and map key order
(serde_json's `Value` is a BTreeMap, so nested keys come out sorted). Everything else (escapes,
indentation, raw non-ASCII) already matches, so strings go through the stdlib's C escaper.
"""

from __future__ import annotations

import json
import math
import threading
from typing import Any

import orjson

from ckptdb.errors import InvalidCheckpointError

_escape: Any = getattr(json.encoder, "c_encode_basestring", None) or json.encoder.py_encode_basestring

# Nesting limit for any JSON value ckptdb accepts: what echo can read back. serde_json's
# Deserializer starts with `remaining_depth: 128` and fails when an array or object takes it to
# 0, so a file holds at most 127 levels, the top-level checkpoint object being one of them: a
# state or pending action may nest 126 levels (checked against serde_json 1.0.87 itself by
# tests/test_rust_agreement.py). Far below Python's recursion limit, so whatever one call stack
# saved, any other can load back.
MAX_DEPTH = 126
DEPTH_MESSAGE = (
    f"nested deeper than {MAX_DEPTH} levels, which echo cannot read "
    "(serde_json reads at most 127 levels in a file)"
)


_CONTAINERS = (dict, list, tuple)
_SCALARS = frozenset((str, int, float, bool, type(None)))
_INLINE_DEPTH = 32


def check_json_value(value: Any, limit: int = MAX_DEPTH) -> None:
    """Refuse non-string object keys and nesting deeper than `limit`.

    `json.dumps` would silently turn a key 1 into "1" (different data back than saved) and fails
    on deep values only at whatever depth the current stack allows.
    """
    if isinstance(value, _CONTAINERS):
        if limit >= _INLINE_DEPTH:
            _check_shallow(value, 1, limit)
        else:
            _check_deep(value, limit)


def _check_shallow(node: Any, depth: int, limit: int) -> None:
    """The common case, a few levels deep: a short recursion, about twice as fast as the stack walk,
    handing any part deeper than _INLINE_DEPTH to it (so the call stack never grows past that)."""
    if depth >= _INLINE_DEPTH:
        _check_deep(node, limit - depth + 1)
        return
    if isinstance(node, dict):
        for key in node:
            if type(key) is not str:
                raise InvalidCheckpointError(f"object key {key!r} is not a string")
        children = node.values()
    else:
        children = node
    for child in children:
        if type(child) not in _SCALARS and isinstance(child, _CONTAINERS):
            _check_shallow(child, depth + 1, limit)


def _check_deep(value: Any, limit: int) -> None:
    """The same checks without recursion, for any depth."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        node, depth = pop()
        if depth > limit:
            raise InvalidCheckpointError(DEPTH_MESSAGE)
        if isinstance(node, dict):
            for key, child in node.items():
                if type(key) is not str:
                    raise InvalidCheckpointError(f"object key {key!r} is not a string")
                if isinstance(child, _CONTAINERS):
                    push((child, depth + 1))
        else:
            for child in node:
                if isinstance(child, _CONTAINERS):
                    push((child, depth + 1))


def format_float(value: float) -> str:
    """Spell a finite float as ryu (and so serde_json) does: shortest digits, `1e16`, `0.0001`."""
    if not math.isfinite(value):
        raise InvalidCheckpointError(f"{value!r} is not a JSON number (NaN and infinity have no JSON form)")
    text = repr(value)
    sign = ""
    if text[0] == "-":
        sign, text = "-", text[1:]
    mantissa, _, exp_text = text.partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    digits = (int_part + frac_part).lstrip("0")
    if not digits:
        return sign + "0.0"
    exponent = (int(exp_text) if exp_text else 0) - len(frac_part)
    stripped = digits.rstrip("0")
    exponent += len(digits) - len(stripped)
    digits = stripped
    length = len(digits)
    point = exponent + length  # position of the decimal point relative to the first digit
    if exponent >= 0 and point <= 16:
        return f"{sign}{digits}{'0' * exponent}.0"
    if 0 < point <= 16:
        return f"{sign}{digits[:point]}.{digits[point:]}"
    if -5 < point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    head = digits if length == 1 else f"{digits[0]}.{digits[1:]}"
    return f"{sign}{head}e{point - 1}"


def _write(value: Any, indent: str, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(_escape(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        if not -9_223_372_036_854_775_808 <= value <= 18_446_744_073_709_551_615:
            check_rust_int(value)
        try:
            out.append(int.__repr__(value))
        except ValueError:  # Python refuses to print ints over sys.get_int_max_str_digits() digits
            raise InvalidCheckpointError(
                f"an integer of about {value.bit_length() * 30103 // 100000} digits is too long to write"
            ) from None
    elif isinstance(value, float):
        out.append(format_float(value))
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        for key in value:  # before sorting: sorted() of mixed key types raises TypeError
            if not isinstance(key, str):
                raise InvalidCheckpointError(f"object key {key!r} is not a string")
        inner = indent + "  "
        out.append("{\n")
        first = True
        for key in sorted(value):
            if not first:
                out.append(",\n")
            first = False
            out.append(inner)
            out.append(_escape(key))
            out.append(": ")
            _write(value[key], inner, out)
        out.append("\n")
        out.append(indent)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append("[]")
            return
        inner = indent + "  "
        out.append("[\n")
        first = True
        for item in value:
            if not first:
                out.append(",\n")
            first = False
            out.append(inner)
            _write(item, inner, out)
        out.append("\n")
        out.append(indent)
        out.append("]")
    else:
        raise InvalidCheckpointError(f"{type(value).__name__} is not a JSON value")


def write_pretty_value(value: Any, indent: str, out: list[str]) -> None:
    """Append serde_json's pretty form of one JSON value (nested map keys sorted) to `out`."""
    check_json_value(value)
    try:
        _write(value, indent, out)
    except RecursionError:
        raise InvalidCheckpointError(DEPTH_MESSAGE) from None


def check_value(value: Any) -> None:
    """Refuse anything echo could not read back as this JSON value: non-JSON types, NaN, non-string
    keys, nesting past MAX_DEPTH, out-of-range integers. A lone surrogate in a string is left to
    the writers, which refuse it (`to_json`, every store's `save`): a store refuses an id that
    holds one with its own, more precise error.

    It accepts and refuses what `write_pretty_value` does, without writing: writing the value
    once to check it made an escaped copy of every string, so building a Checkpoint of a huge
    state took twice the state's memory (a 32 MiB emoji state: 67 MB) before anything was saved."""
    if value is None or type(value) is bool or type(value) is str:
        return
    check_json_value(value)  # keys and depth first: the walk below then cannot go deeper
    stack = [value]
    pop, extend = stack.pop, stack.extend
    while stack:
        item = pop()
        if isinstance(item, str) or item is None or item is True or item is False:
            continue
        if isinstance(item, int):
            if not -9_223_372_036_854_775_808 <= item <= 18_446_744_073_709_551_615:
                check_rust_int(item)  # refuses past 1100 bits, so what passes can be printed
        elif isinstance(item, float):
            if item - item != 0.0:
                format_float(item)  # raises its message for NaN and infinity
        elif isinstance(item, dict):
            extend(item.values())
        elif isinstance(item, (list, tuple)):
            extend(item)
        else:
            raise InvalidCheckpointError(f"{type(item).__name__} is not a JSON value")


_orjson_dumps = orjson.dumps
_OrjsonError = orjson.JSONEncodeError

# One encoder for every column value: building one per call (what json.dumps with options does) costs
# about as much as encoding a small value. check_circular is off because check_json_value has already
# refused anything nested deeper than MAX_DEPTH, which a cycle always is.
_compact = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False
).encode


def _utf8_len(text: str) -> int:
    """UTF-8 bytes of a non-ASCII str, counted in 1 MiB slices so a huge one is never copied whole."""
    if len(text) <= _SLICE:
        return len(text.encode("utf-8", "surrogatepass"))
    return sum(
        len(text[i : i + _SLICE].encode("utf-8", "surrogatepass")) for i in range(0, len(text), _SLICE)
    )


_SLICE = 1 << 20


def _plain(node: Any, depth: int) -> int:
    """When `node` holds only exact built-in JSON types, string keys and finite floats, no deeper
    than _INLINE_DEPTH (values orjson writes as the stdlib encoder would, same values back): the
    UTF-8 bytes of its strings and keys, a lower bound of its JSON text's size; else -1.

    The count lets a value too big for the database be refused before it is encoded: orjson's
    buffer peaks at twice the text it writes, the str of non-ASCII text takes up to 4 bytes a
    character, and the driver and the engine copy it again. It adds about 1 us to a 2 KB state."""
    if depth >= _INLINE_DEPTH:
        return -1
    size = 0
    if type(node) is dict:
        for key in node:
            if type(key) is not str:
                return -1
            size += len(key) if key.isascii() else _utf8_len(key)
        children: Any = node.values()
    else:
        children = node
    for child in children:
        kind = type(child)
        if kind is str:
            size += len(child) if child.isascii() else _utf8_len(child)
        elif kind is int or kind is bool or child is None:
            continue
        elif kind is float:
            if child - child != 0.0:  # NaN or infinity (orjson would write null)
                return -1
        elif kind is dict or kind is list or kind is tuple:
            inner = _plain(child, depth + 1)
            if inner < 0:
                return -1
            size += inner
        else:  # subclasses, enums, datetimes...: orjson would write some of them, the stdlib refuses
            return -1
    return size


class JsonTooLargeError(InvalidCheckpointError):
    """dumps_compact's text would be longer than `max_bytes` (raised before the text exists)."""

    def __init__(self, size: int, limit: int, *, at_least: bool = False):
        self.size = size
        self.limit = limit
        amount = f"at least {size:,}" if at_least else f"{size:,}"
        super().__init__(f"{amount} bytes of JSON, over the limit of {limit:,} bytes for one value")


def dumps_compact(value: Any, max_bytes: int | None = None) -> str:
    """Compact JSON text for database columns: key order kept, NaN refused, non-ASCII raw.

    `max_bytes` refuses a value whose UTF-8 text is longer (JsonTooLargeError): before encoding
    when its strings alone are longer (see _plain), else on orjson's bytes before they become a str.

    orjson writes the common case in a tenth of the stdlib's time (this is the hot path of every
    save). It runs only on values `_plain` vouches for; everything else, and whatever orjson still
    refuses (integers past 64 bits, lone surrogates), goes the stdlib way, which raises the
    precise error or writes the value exactly. Both spell the same values (floats may differ in
    spelling only, `1e-7` vs `1e-07`).
    """
    text = dumps_column(value, max_bytes, bytes_from=None)
    return text if isinstance(text, str) else text.decode()


BYTES_FROM = 1 << 20
"""JSON text this long or longer: `dumps_column` gives its UTF-8 bytes, not a str."""


def dumps_column(
    value: Any, max_bytes: int | None = None, *, bytes_from: int | None = BYTES_FROM
) -> str | bytes:
    """`dumps_compact`, except that text of `bytes_from` bytes or more stays UTF-8 bytes, for a
    driver that binds bytes as they are (SQLite, through `CAST(? AS TEXT)`: see rows.py).

    Memory is why. The str of a huge text is one more copy of it beside orjson's bytes, and the
    driver reads a non-ASCII str through its UTF-8 form, which CPython keeps inside the str: two
    copies more, each as big as the text. And orjson itself leaves such a UTF-8 copy inside each
    non-ASCII string of the state it writes, for as long as the caller keeps the state, so a
    value of BYTES_FROM or more whose non-ASCII strings are big is written by the stdlib's
    encoder instead, on every engine (as fast for a few big strings), and its text turned into
    bytes at once where bytes are wanted. Measured in a fresh process, 100 MB of JSON, growth
    with the state, to save: SQLite non-ASCII (`é`) 503 MB before, 353 MB now, ASCII 402 MB
    either way; PostgreSQL `é` 598 MB before, 487-497 MB now (README, Known gaps). Small values
    keep the str, and the hot path its time (to_row of a 2 KB state: 41.8-42.2 us before,
    41.9-43.2 us now).
    """
    kind = type(value)
    container = kind is dict or kind is list or kind is tuple
    if container:
        text_bytes = _plain(value, 1)
        plain = text_bytes >= 0
    else:
        plain = kind is str or kind is int or kind is bool or value is None
        text_bytes = (len(value) if value.isascii() else _utf8_len(value)) if kind is str else 0
    if max_bytes is not None and text_bytes > max_bytes:
        raise JsonTooLargeError(text_bytes, max_bytes, at_least=True)
    if plain and not (text_bytes >= BYTES_FROM and _mostly_non_ascii(value)):
        try:
            data = _orjson_dumps(value)
        except _OrjsonError:
            pass
        else:
            if max_bytes is not None and len(data) > max_bytes:
                raise JsonTooLargeError(len(data), max_bytes)
            if bytes_from is not None and len(data) >= bytes_from:
                return data
            return data.decode()
    check_json_value(value)
    _check_ints(value)
    try:
        text = _compact(value)
        if bytes_from is not None and len(text) >= bytes_from // 4 and not text.isascii():
            try:
                data = text.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate: the caller refuses the str with its message
                pass
            else:
                del text  # before the size check: never both copies longer than needed
                if max_bytes is not None and len(data) > max_bytes:
                    raise JsonTooLargeError(len(data), max_bytes)
                return data if len(data) >= bytes_from else data.decode()
        if max_bytes is not None and len(text) > max_bytes // 4:
            size = len(text.encode("utf-8", "surrogatepass"))
            if size > max_bytes:
                raise JsonTooLargeError(size, max_bytes)
        return text
    except JsonTooLargeError:
        raise
    except (TypeError, ValueError) as exc:
        raise InvalidCheckpointError(f"not JSON-serializable: {exc}") from None
    except RecursionError:
        raise InvalidCheckpointError(DEPTH_MESSAGE) from None


def _mostly_non_ascii(value: Any) -> bool:
    """Whether orjson would leave big UTF-8 copies in the value's strings: a quarter of
    BYTES_FROM characters or more in non-ASCII strings and keys (for big values only: a walk)."""
    count = 0
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str:
            if not item.isascii():
                count += len(item)
        elif kind is dict:
            stack.extend(item)
            stack.extend(item.values())
        elif kind is list or kind is tuple:
            stack.extend(item)
    return count >= BYTES_FROM // 4


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# serde_json 1.0.87 without its `float_roundtrip` feature (echo's build: default features), ported
# from de.rs (parse_integer, parse_long_integer, parse_decimal, parse_decimal_overflow,
# parse_exponent, parse_exponent_overflow, f64_from_parts): the f64 it makes of a JSON number's
# text. It keeps the first digits that fit a u64, counts the rest as powers of ten and multiplies
# by a table of powers, so it is not always the nearest float, and it refuses a number whose
# product is infinite. Python's float() rounds exactly and only overflows past the largest float.
_POW10 = tuple(float(f"1e{i}") for i in range(309))
_U64_MAX = 2**64 - 1
_I64_MIN = -(2**63)
_I32_MAX = 2**31 - 1


def _overflows(value: int, digit: int, limit: int) -> bool:
    return value >= limit // 10 and (value > limit // 10 or digit > limit % 10)


def serde_f64(text: str) -> float:
    """The f64 serde_json reads from a JSON number (valid JSON number text), or ValueError when
    serde_json refuses it as out of range (a value whose approximation overflows)."""
    i, n = 0, len(text)
    positive = text[0] != "-"
    if not positive:
        i = 1
    significand = exponent = 0
    digits_ignored = False
    while i < n and "0" <= text[i] <= "9":
        digit = ord(text[i]) - 48
        if digits_ignored or _overflows(significand, digit, _U64_MAX):
            digits_ignored = True  # parse_long_integer: later digits only scale
            exponent += 1
        else:
            significand = significand * 10 + digit
        i += 1
    if i < n and text[i] == ".":
        i += 1
        while i < n and "0" <= text[i] <= "9":
            digit = ord(text[i]) - 48
            if _overflows(significand, digit, _U64_MAX):  # parse_decimal_overflow: ignore the rest
                while i < n and "0" <= text[i] <= "9":
                    i += 1
                break
            significand = significand * 10 + digit
            exponent -= 1
            i += 1
    if i < n and text[i] in "eE":
        i += 1
        positive_exp = True
        if text[i] in "+-":
            positive_exp = text[i] == "+"
            i += 1
        exp = 0
        while i < n and "0" <= text[i] <= "9":
            digit = ord(text[i]) - 48
            if _overflows(exp, digit, _I32_MAX):  # parse_exponent_overflow
                if significand != 0 and positive_exp:
                    raise ValueError(f"number {_short(text)} is out of range for echo (serde_json)")
                return 0.0 if positive else -0.0
            exp = exp * 10 + digit
            i += 1
        exponent = exponent + exp if positive_exp else exponent - exp  # saturating: cannot reach i32
    value = float(significand)
    while True:
        if abs(exponent) < len(_POW10):
            if exponent >= 0:
                value *= _POW10[exponent]
                if math.isinf(value):
                    raise ValueError(f"number {_short(text)} is out of range for echo (serde_json)")
            else:
                value /= _POW10[-exponent]
            break
        if value == 0.0:
            break
        if exponent >= 0:
            raise ValueError(f"number {_short(text)} is out of range for echo (serde_json)")
        value /= 1e308
        exponent += 308
    return value if positive else -value


def _short(text: str) -> str:
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


def _parse_float(text: str) -> float:
    """A float as echo reads it: refused when serde_json refuses it (1e400), and the value
    serde_json makes when Python's exact rounding overflows but serde_json's does not."""
    value = float(text)
    if -1e300 < value < 1e300:  # serde_json's product of a smaller value is never infinite
        return value
    rust = serde_f64(text)
    return rust if math.isinf(value) else value


def _parse_int(text: str) -> int | float:
    """An integer as echo reads it. serde_json reads `-0` as the float -0.0 (so a `step_count` of
    -0 is refused, as by serde) and integers outside i64/u64 as floats: ckptdb keeps those exact
    (echo would round them), but refuses what serde_json refuses (too big for an f64)."""
    if text == "-0":
        return -0.0
    value = int(text)
    if not _I64_MIN <= value <= _U64_MAX:
        serde_f64(text)
    return value


def check_rust_int(value: int) -> None:
    """Refuse an int that echo cannot read back (serde_json: beyond f64 once outside i64/u64)."""
    if _I64_MIN <= value <= _U64_MAX:
        return
    try:
        if value.bit_length() > 1100:  # above 2^1100 even serde_json's truncated product overflows
            raise ValueError
        serde_f64(int.__repr__(value))
    except ValueError:
        raise InvalidCheckpointError(
            f"an integer of about {value.bit_length() * 30103 // 100000} digits is out of range for echo "
            "(serde_json reads integers beyond 64 bits as floats, and this one overflows)"
        ) from None


def _check_ints(value: Any) -> None:
    """check_rust_int for every int inside a value (the path for values orjson did not write)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, int) and not isinstance(item, bool):
            check_rust_int(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


_decoder = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_parse_float, parse_int=_parse_int)
_repeats = threading.local()  # per thread: the objects a decode found with a repeated key


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Every JSON object of a document: a dict keeping the last of repeated keys, as serde_json's
    Value does; an object that had repeated keys is noted, for the top level's check."""
    made = dict(pairs)
    if len(made) != len(pairs):
        _repeats.found.append((made, pairs))
    return made


# The same parse through object_pairs_hook: about 1 us more per fixture file than the plain
# decoder (32.7 against 31.5 us over the 300 fixtures), where parsing the top level pair by pair
# in Python (json.decoder.JSONObject) cost about 8 us more.
_document_decoder = json.JSONDecoder(
    parse_constant=_reject_constant, parse_float=_parse_float, parse_int=_parse_int, object_pairs_hook=_object
)


def loads_strict(text: str) -> Any:
    """Parse JSON as serde_json would accept it: no NaN/Infinity, no out-of-range numbers.

    Raises ValueError (json.JSONDecodeError is one) or RecursionError; callers turn them into a
    message that names the file.
    """
    return _decoder.decode(text)


def loads_document(text: str) -> tuple[Any, list[str]]:
    """`loads_strict` for a whole file, and the top-level keys that occur more than once.

    serde's derived Deserialize refuses a repeated field of the struct ("duplicate field `id`")
    while nested maps (serde_json's Value) keep the last value, as Python's dict does.
    """
    _repeats.found = []
    try:
        document = _document_decoder.decode(text)
        found = _repeats.found
    finally:
        _repeats.found = []
    for made, pairs in found:
        if made is document:
            keys = [key for key, _ in pairs]
            return document, sorted({key for key in keys if keys.count(key) > 1})
    return document, []


_orjson_loads = orjson.loads
_OrjsonDecodeError = orjson.JSONDecodeError
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS = b"0" * 19


def loads_trusted(text: str) -> Any:
    """Parse JSON text from a database column: what `json.loads` reads, exactly, in half its time.

    Every load decodes its row's JSON columns, most of a load's cost: orjson reads the 2 KB state
    of the benchmarks in 3.7 us against json.loads's 9.7 us (timeit, shared 2-core machine). It
    reads the same values wherever it reads the text at all, but for one case: an integer outside
    64 bits (a stored state may hold one, ckptdb keeps them exact) becomes a float. Such an integer
    is a run of 19 digits or more, which a byte translation and a substring search find in 1.2 us;
    text holding one, and text orjson refuses (NaN, Infinity, a lone surrogate, a number past the
    largest float, nesting past orjson's limit, not str at all), is json.loads's, which reads it as
    before or raises what it raised before. A run of digits inside a string only sends the text
    the slow way. So does text of BYTES_FROM characters or more: its UTF-8 and their translation
    would be two more copies of a huge state (the peak memory tests/test_hostile_input.py bounds)."""
    if type(text) is str and len(text) < BYTES_FROM:
        data = text.encode("utf-8", "surrogatepass")
        if _LONG_DIGITS not in data.translate(_DIGITS_TO_ZERO):
            try:
                return _orjson_loads(data)
            except _OrjsonDecodeError:
                pass
    return json.loads(text)
