"""Parameters of API calls: declared once with a type, read from the body then the query, converted.

A parameter's converter is chosen when it is declared, so a request only runs the conversion itself.
Form-encoded bodies and query strings carry text: numbers, booleans and JSON structures are accepted in
their text form too ("12", "true", '{"a": 1}').

Hostile text stops here (ovsd/dal/text.py): a body, form, query string or path whose text is not valid
UTF-8 / Unicode (a lone surrogate, sent raw or as a JSON ``\\ud800`` escape) or holds a NUL is refused with
400 invalid_data naming the field, before the handler runs; a ``str`` parameter also refuses other control
characters unless declared ``text``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import quote_from_bytes, unquote_to_bytes

from twisted.web.server import Request

from ovsd.api.errors import ApiError, invalid_data, missing_parameter
from ovsd.dal.paging import whole_number
from ovsd.dal.text import display, nested_problem, string_problem

GUID: Final = "guid"
GUID_PATTERN = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

# str | int | float | bool | dict | list | GUID, or a tuple of them: the first that accepts the value wins
ParamType = type | str | tuple[type | str, ...]
Where = Literal["body", "query"]
_PLAIN_PATH = re.compile(rb"[!-$&-~]*")  # printable ASCII without %: no segment to decode
MISSING: Final[Any] = object()

Converter = Callable[[Any], Any]


class _Refused(Exception):
    """A value that a converter does not accept."""


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise _Refused


def _to_int(value: Any) -> int:
    number = whole_number(value)
    if number is None:
        raise _Refused
    return number


def _to_float(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise _Refused


_BOOLEANS = {"true": True, "True": True, "false": False, "False": False}


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in _BOOLEANS:
        return _BOOLEANS[value]
    raise _Refused


def _json_text(value: Any, kind: type) -> Any:
    if isinstance(value, kind):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            raise _Refused from None
        if isinstance(parsed, kind):
            return parsed
    raise _Refused


def _to_dict(value: Any) -> dict[str, Any]:
    result: dict[str, Any] = _json_text(value, dict)
    return result


def _to_list(value: Any) -> list[Any]:
    result: list[Any] = _json_text(value, list)
    return result


def _to_guid(value: Any) -> str:
    if isinstance(value, str) and GUID_PATTERN.fullmatch(value):
        return value.lower()
    raise _Refused


def _passthrough(value: Any) -> Any:
    return value


_CONVERTERS: dict[type | str, tuple[Converter, str]] = {
    str: (_to_str, "a string"),
    int: (_to_int, "an integer"),
    float: (_to_float, "a number"),
    bool: (_to_bool, "a boolean"),
    dict: (_to_dict, "an object"),
    list: (_to_list, "a list"),
    GUID: (_to_guid, "a GUID"),
    object: (_passthrough, "any value"),
}


def _types_of(kind: ParamType) -> tuple[type | str, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def converter_for(kind: ParamType) -> tuple[Converter, str]:
    """The converter and the human name ("an integer") of a declared type; unknown types fail here."""
    found = []
    for one in _types_of(kind):
        if one not in _CONVERTERS:
            raise TypeError(f"unsupported parameter type {one!r}")
        found.append(_CONVERTERS[one])
    if len(found) == 1:
        return found[0]
    converters = tuple(convert for convert, _ in found)

    def first_accepting(value: Any) -> Any:
        for convert in converters:
            try:
                return convert(value)
            except _Refused:
                continue
        raise _Refused

    return first_accepting, " or ".join(name for _, name in found)


@dataclass(frozen=True, slots=True)
class Param:
    """One declared parameter of an endpoint.

    ``where="body"`` reads the body first, then the query string (the contract's rule for actions);
    ``where="query"`` reads the query string only (list filters, ``contents``, ``sort``, ``page``).
    A missing optional parameter is absent from the call's params unless it has a default.
    """

    name: str
    type: ParamType = str
    mandatory: bool = False
    where: Where = "body"
    default: Any = MISSING
    nullable: bool = False
    description: str = ""
    text: bool = False  # a str that may span lines (tab, line feed, carriage return)
    convert: Converter = field(init=False, repr=False, compare=False)
    type_name: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        convert, type_name = converter_for(self.type)
        object.__setattr__(self, "convert", convert)
        object.__setattr__(self, "type_name", type_name)

    def value_of(self, raw: Any) -> Any:
        if raw is None and self.nullable:
            return None
        try:
            value = self.convert(raw)
        except _Refused:
            raise invalid_data(f"Invalid data passed: {self.name} must be {self.type_name}") from None
        if isinstance(value, str):
            problem = string_problem(value, text=self.text)
            if problem is not None:
                raise invalid_data(f"Invalid data passed: {self.name} {problem}")
        elif isinstance(value, dict | list):
            # a structure may come from JSON text in a query string, never seen by the body's check
            found = nested_problem(value, self.name)
            if found is not None:
                raise hostile(*found)
        return value


def hostile(where: str, problem: str) -> ApiError:
    """The 400 for text that cannot be stored (or, for a single-line field, a control character)."""
    return invalid_data(f"Invalid data passed: {where} {problem}")


# --- reading a request -------------------------------------------------------------------------------------
FORM = b"application/x-www-form-urlencoded"
MULTIPART = b"multipart/form-data"


def _unquote(part: bytes, what: str) -> str:
    """One percent-encoded name or value of a form, as strict UTF-8 without NUL (parse_qs would quietly
    turn bytes that are not UTF-8 into U+FFFD, storing something the client never sent)."""
    try:
        text = unquote_to_bytes(part.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        raise invalid_data(f"Invalid data passed: {what} is not valid UTF-8") from None
    if "\x00" in text:
        raise invalid_data(f"Invalid data passed: {what} holds a NUL character")
    return text


def form_fields(raw: bytes, what: str = "the form") -> dict[str, list[str]]:
    """The fields of a form-encoded body or query string, each with its values in order (blank ones kept).

    400 invalid_data naming the field for a name or value that is not UTF-8 or holds a NUL.
    """
    fields: dict[str, list[str]] = {}
    for pair in raw.split(b"&"):
        if not pair:
            continue
        name_part, _, value_part = pair.partition(b"=")
        name = _unquote(name_part, f"a field name in {what}")
        fields.setdefault(name, []).append(_unquote(value_part, display(name)))
    return fields


def _decode_form(raw: bytes, what: str = "the form") -> dict[str, Any]:
    # a repeated key is a list; a single one its value
    return {k: v[0] if len(v) == 1 else v for k, v in form_fields(raw, what).items()}


def query_of(request: Request) -> dict[str, Any]:
    """The query string as a dict (blank values kept: ``contents=`` means something)."""
    uri: bytes = request.uri
    mark = uri.find(b"?")
    return _decode_form(uri[mark + 1:], "the query string") if mark >= 0 else {}


def body_of(request: Request) -> Any:
    """The request body: a JSON value, a dict for form bodies, None when empty."""
    content = request.content
    if content is None:
        return None
    content.seek(0)
    raw: bytes = content.read()
    if not raw.strip():
        return None
    content_type = (request.getHeader(b"content-type") or b"").lower()
    if content_type.startswith(FORM):
        return _decode_form(raw)
    if content_type.startswith(MULTIPART):
        # the contract speaks JSON and forms; twisted would merge multipart parts with the query string
        raise invalid_data("Invalid data passed: send the body as JSON or form-encoded")
    try:
        parsed = json.loads(raw, parse_constant=_not_json)
    except (ValueError, RecursionError):
        raise invalid_data("Invalid data passed: the body is not valid JSON") from None
    if parsed is None:
        raise invalid_data("Invalid data passed: the body must be a JSON object")
    if _may_hide_unstorable(raw):
        found = nested_problem(parsed, "")
        if found is not None:
            raise hostile(*found)
    return parsed


def _may_hide_unstorable(raw: bytes) -> bool:
    """Whether a parsed JSON body may hold a lone surrogate or a NUL: only through an escape, or through
    bytes that are not strict UTF-8 (json.loads passes encoded surrogates and reads UTF-16/32 too), so a
    plain body is not walked."""
    if b"\\u" in raw:
        return True
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def path_problem(path: bytes) -> ApiError | None:
    """400 invalid_data for a request path with a segment that is not UTF-8 or holds a control character
    (``/api/users/%ED%A0%80/``, ``%00``), else None; well-formed text that names nothing stays a 404."""
    if _PLAIN_PATH.fullmatch(path):
        return None  # the usual path: nothing to decode
    for segment in path.split(b"/"):
        raw = unquote_to_bytes(segment)
        shown = quote_from_bytes(raw)  # ASCII whatever the segment holds
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return invalid_data(f'Invalid data passed: the path segment "{shown}" is not valid UTF-8')
        problem = string_problem(text)
        if problem is not None:
            return invalid_data(f'Invalid data passed: the path segment "{shown}" {problem}')
    return None


def _not_json(constant: str) -> Any:
    # NaN and Infinity are Python's extension, not JSON: stored, they would make answers invalid JSON
    raise ValueError(f"{constant} is not JSON")


def bind(
    params: Iterable[Param], body: Any, request: Request, allowed_fields: frozenset[str] | None,
) -> dict[str, Any]:
    """Read, check and convert the declared parameters of one call.

    Raises 400 invalid_data for a wrong type or an unknown field (when ``allowed_fields`` is given),
    406 invalid_data for a missing mandatory parameter.
    """
    fields: Mapping[str, Any]
    if isinstance(body, dict):
        fields = body
        if allowed_fields is not None:
            unknown = [name for name in body if name not in allowed_fields]
            if unknown:
                raise invalid_data(f"Invalid data passed: unknown field(s): {', '.join(sorted(unknown))}")
    elif body is None:
        fields = {}
    else:
        raise invalid_data("Invalid data passed: the body must be a JSON object")
    query: dict[str, Any] | None = None
    values: dict[str, Any] = {}
    for param in params:
        if param.where == "body" and param.name in fields:
            raw = fields[param.name]
        else:
            if query is None:
                query = query_of(request)
            if param.name in query:
                raw = query[param.name]
            elif param.mandatory:
                raise missing_parameter(param.name)
            else:
                if param.default is not MISSING:
                    values[param.name] = param.default
                continue
        values[param.name] = param.value_of(raw)
    return values
