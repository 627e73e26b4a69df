"""Reading a response body: as POP JSON for the verdict, as text for the evidence.

Two readings, kept apart on purpose. ``read_json`` says whether the bytes
are POP JSON, strictly: an object whose ``status`` and ``result_code`` are
strings, no key given twice (JSON leaves duplicates undefined, and Python
would keep the last one silently), no number JSON does not allow (Python
reads ``NaN``, ``Infinity`` and ``1e999`` as floats that no JSON text can
hold, so they could not be kept as evidence), no string with half of a
UTF-16 surrogate pair (``\\ud800`` alone, which no UTF-8 text can hold),
nested no deeper than a POP answer could be. The verdict depends on that
reading only. ``body_text`` turns the bytes into text for the Review
sheet; it never raises, whatever the charset the server names, and the
verdict never depends on it.

Both readings pass every string through the caller's ``scrub``, after
decoding: a JSON ``\\u`` escape or an escaping charset can spell the
server key in bytes that do not contain it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any, Final, NamedTuple

BODY_TEXT_LIMIT: Final = 32_767
"""Characters of a non-POP body kept as evidence: what one Excel cell holds."""

READ_LIMIT: Final = 1 << 20
"""Bytes of a body read at most; a POP answer is well under 4 KiB."""

MAX_DEPTH: Final = 16
"""Levels of nesting a POP answer may have; the API text's answers are flat."""

Scrub = Callable[[str], str]

_SURROGATE: Final = re.compile("[\ud800-\udfff]")


class Body(NamedTuple):
    """A response body as read: what arrived, what cut it short, and whether
    it went past READ_LIMIT."""

    content: bytes
    broken: BaseException | None = None
    cut: bool = False


class JsonBody(NamedTuple):
    """What a body says when read as JSON.

    Args:
        pop: the body as POP JSON, or None when it is not POP JSON.
        members: every member of the top-level object, repeated keys
            included, in order; empty when the body is not a JSON object.
        flaw: why a JSON object is not POP JSON although it parsed (a key
            given twice, a number JSON does not allow, too deep), for the
            evidence; None otherwise.
    """

    pop: dict[str, Any] | None = None
    members: tuple[tuple[str, Any], ...] = ()
    flaw: str | None = None


NOT_JSON: Final = JsonBody()


def read_json(content: bytes, scrub: Scrub) -> JsonBody:
    """Read ``content`` as JSON and say whether it is POP JSON.

    Every string of what is returned, keys too, has passed through
    ``scrub``; the verdict depends on the body as it came.
    """
    repeated: list[str] = []
    odd: list[str] = []
    objects: list[list[tuple[str, Any]]] = []

    def build(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        built: dict[str, Any] = {}
        for key, value in pairs:
            if key in built and not repeated:
                repeated.append(key)
            built[key] = value
        # The decoder finishes inner objects first: the last one is the top.
        objects[:] = [pairs]
        return built

    # NaN, Infinity and a number beyond a float's range are kept as the text
    # they were written as: the body is not POP JSON, and what is read from
    # it stays plain JSON data.
    def constant(text: str) -> str:
        odd.append(f"{text} is not a JSON number")
        return text

    def number(text: str) -> float | str:
        value = float(text)
        if math.isfinite(value):
            return value
        odd.append(f"the number {_short(text)} is out of range")
        return text

    try:
        data = json.loads(
            content,
            object_pairs_hook=build,
            parse_constant=constant,
            parse_float=number,
        )
    except (ValueError, RecursionError):
        return NOT_JSON
    if not isinstance(data, dict):
        return NOT_JSON

    # In place: the members share their objects and arrays with ``data``.
    scrub_json(data, scrub)
    members = tuple((scrub(key), _scrubbed(value, scrub)) for key, value in objects[0])
    if repeated:
        # Scrubbed before it is cut, so that no part of the key is shown.
        shown = _short(scrub(repeated[0]))
        return JsonBody(None, members, f"the key {shown!r} appears twice")
    if odd:
        return JsonBody(None, members, odd[0])
    depth, surrogate = _walk(data)
    if surrogate is not None:
        shown = surrogate.encode("utf-8", "backslashreplace").decode("ascii")
        return JsonBody(None, members, f"a string holds a lone surrogate {shown}")
    if depth > MAX_DEPTH:
        return JsonBody(None, members, f"nested more than {MAX_DEPTH} levels deep")
    if isinstance(data.get("status"), str) and isinstance(data.get("result_code"), str):
        return JsonBody(data, members)
    return JsonBody(None, members)


def scrub_json(data: dict[str, Any], scrub: Scrub) -> dict[str, Any]:
    """Pass every string of freshly parsed JSON, keys too, through ``scrub``.

    Changes ``data`` in place and returns it. Iterative rather than
    recursive, so that no nesting can exhaust the stack.
    """
    todo: list[dict[str, Any] | list[Any]] = [data]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            items = list(node.items())
            node.clear()
            for key, value in items:
                node[scrub(key)] = scrub(value) if isinstance(value, str) else value
        values = node.values() if isinstance(node, dict) else node
        todo += [value for value in values if isinstance(value, dict | list)]
        if isinstance(node, list):
            node[:] = [scrub(item) if isinstance(item, str) else item for item in node]

    return data


def body_text(
    content: bytes, content_type: str | None, *, cut: bool, scrub: Scrub
) -> str:
    """The body as text for the Review sheet, scrubbed, capped with a marker.

    Never raises: a charset that cannot be used is named in a note, and
    the body is shown as UTF-8 instead.
    """
    text, unusable = _decode(content, content_type)
    text = scrub(plain_text(text))

    notes = []
    if unusable is not None:
        notes.append(
            f"[popbatch: the charset {_short(scrub(unusable))!r} that Content-Type "
            "names could not be used; the body is shown as UTF-8]"
        )
    if cut:
        notes.append(
            f"[popbatch: cut here; the body was larger than {READ_LIMIT:,} bytes]"
        )
    elif len(text) > BODY_TEXT_LIMIT:
        notes.append(f"[popbatch: cut here; the body had {len(text):,} characters]")
    if not notes:
        return text

    marker = "".join(f"\n{note}" for note in notes)
    return text[: BODY_TEXT_LIMIT - len(marker)] + marker


def plain_text(text: str) -> str:
    """``text`` with every lone surrogate spelled as its escape, e.g. ``\\ud800``.

    A charset such as ``unicode_escape`` can decode bytes to half of a
    surrogate pair, which neither SQLite nor a workbook can store.
    """
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def media_type(content_type: str | None) -> str | None:
    """The media type of a Content-Type value, in lower case, without parameters."""
    return (content_type or "").split(";", 1)[0].strip().lower() or None


def _decode(content: bytes, content_type: str | None) -> tuple[str, str | None]:
    """The body as text, and the charset named but unusable (or None)."""
    charset = _charset(content_type)
    if charset:
        try:
            return content.decode(charset, "replace"), None
        # The charset is a name the server chose, and Python looks it up
        # among all its codecs: some are not text encodings, some refuse
        # "replace", some raise on any input. Evidence must never crash a
        # worker, so any failure of the codec falls back to UTF-8.
        except Exception:
            return content.decode("utf-8", "replace"), charset
    try:
        return content.decode("utf-8"), None
    except UnicodeDecodeError:
        # Japanese pages without a charset are most often Shift_JIS (as cp932).
        return content.decode("cp932", "replace"), None


def _charset(content_type: str | None) -> str | None:
    for param in (content_type or "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"') or None
    return None


def _scrubbed(value: Any, scrub: Scrub) -> Any:
    """A member's value through ``scrub``, whatever JSON type it is."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict | list):
        # A repeated key's earlier value is no longer part of the object.
        return scrub_json({"": value}, scrub)[""]
    return value


def _short(text: str, limit: int = 40) -> str:
    """``text`` cut to ``limit`` characters for a message, marked when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _walk(data: dict[str, Any]) -> tuple[int, str | None]:
    """How deeply objects and arrays nest in ``data`` (a flat object is 1),
    and the first lone surrogate of its strings, keys too (or None)."""
    deepest = 0
    surrogate: str | None = None
    todo: list[tuple[Any, int]] = [(data, 1)]
    while todo:
        node, level = todo.pop()
        deepest = max(deepest, level)
        values = list(node.values()) if isinstance(node, dict) else node
        texts = [*node, *values] if isinstance(node, dict) else node
        for text in texts:
            found = _SURROGATE.search(text) if isinstance(text, str) else None
            if found is not None and surrogate is None:
                surrogate = found.group()
        todo += [
            (value, level + 1) for value in values if isinstance(value, dict | list)
        ]

    return deepest, surrogate
