"""The server key in every spelling a server could echo it in, and the mask over it.

A page that echoes a request back may spell the key, or the base64 token
of the Authorization header, in many ways, and a mixture of them inside
one key: each character as itself, as URL escapes (``%2F``, ``%2f``, ``%252F``
when encoded twice, UTF-8 bytes one escape each), as a JSON or script
escape (``\\/``, ``\\u002F``, ``\\x2f``), as an HTML character reference
(``&#47;``, ``&#x2F;``, ``&#0047``, ``&sol;``, ``&amp;#47;``), or a space
as ``+``. :class:`KeyScrubber` builds one regular expression from the key
that matches all of them, for text and for bytes, so that what was never
foreseen one form at a time is masked all the same.

Hex digits match in either case; letters of the key match only as given,
since a key spelled in another case is another key.
"""

from __future__ import annotations

import base64
import html.entities
import re
from typing import Final

MASK: Final = "********"

# Named HTML character references, by the character they stand for
# ("/" -> ["sol;"]); the legacy names without a semicolon are included.
_NAMED: Final[dict[str, list[str]]] = {}
for _name, _char in html.entities.html5.items():
    _NAMED.setdefault(_char, []).append(_name)


class KeyScrubber:
    """Masks every form of one server key in text and in bytes.

    The forms are the key itself, the base64 of the key and of the
    Authorization header's ``key:`` (standard and URL-safe alphabets,
    with or without padding), each character of which may be spelled in any
    of the ways the module's docstring lists.
    """

    __slots__ = ("_bytes", "_text")

    def __init__(self, key: str) -> None:
        pattern = _pattern(key)
        self._text = re.compile(pattern)
        self._bytes = re.compile(pattern.encode("utf-8"))

    def __repr__(self) -> str:
        return "KeyScrubber(********)"

    def text(self, text: str) -> str:
        """``text`` with every form of the key replaced by the mask."""
        return self._text.sub(MASK, text)

    def data(self, data: bytes) -> bytes:
        """``data`` with every form of the key, in ASCII or UTF-8, masked."""
        return self._bytes.sub(MASK.encode("ascii"), data)

    def found_in(self, data: bytes) -> bool:
        """Whether ``data`` holds the key in any form."""
        return self._bytes.search(data) is not None


def key_forms(key: str) -> list[str]:
    """The key and its base64 tokens, longest first, without duplicates."""
    tokens: set[str] = {key}
    for plain in (key, f"{key}:"):
        raw = plain.encode("utf-8")
        for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
            token = encoded.decode("ascii")
            # Without its padding too: a token cut from a longer one, or
            # sent without it, still gives the key away.
            tokens |= {token, token.rstrip("=")}

    return sorted((token for token in tokens if token), key=len, reverse=True)


def _pattern(key: str) -> str:
    """One regular expression matching every form of ``key``."""
    forms = ["".join(_spellings(char) for char in form) for form in key_forms(key)]
    # No form at all cannot happen (the token of "key:" is never empty), but
    # an empty pattern would match everywhere: match nowhere instead.
    return "|".join(f"(?:{form})" for form in forms) or "(?!)"


def _spellings(char: str) -> str:
    """A group matching ``char`` in each way text can spell it."""
    code = ord(char)
    found = {re.escape(char)}

    # URL: each UTF-8 byte as %XX; "%" itself may be escaped again (%25).
    escaped = "".join(f"%(?:25)*{byte:02x}" for byte in char.encode("utf-8"))
    found.add(f"(?i:{escaped})")
    if char == " ":
        found.add(r"\+")

    # JSON and script escapes; an astral character as a surrogate pair.
    if code > 0xFFFF:
        high, low = divmod(code - 0x10000, 0x400)
        found.add(f"(?i:\\\\u{0xD800 + high:04x}\\\\u{0xDC00 + low:04x})")
    else:
        found.add(f"(?i:\\\\u{code:04x})")
    found.add(f"(?i:\\\\U{code:08x})")
    if code < 0x100:
        found.add(f"(?i:\\\\x{code:02x})")
    if char in '/"\\':
        found.add(re.escape("\\" + char))

    # HTML: decimal and hex references, leading zeros and the semicolon
    # optional, the ampersand perhaps escaped again (&amp;#47;).
    amp = "&(?:amp;)*"
    found.add(f"{amp}#0*{code};?")
    found.add(f"(?i:{amp}#x0*{code:x};?)")
    found.update(f"{amp}{re.escape(name)}" for name in _NAMED.get(char, ()))

    # Longest first: a shorter spelling that is the start of a longer one
    # would leave the rest of it behind.
    return "(?:" + "|".join(sorted(found, key=len, reverse=True)) + ")"
