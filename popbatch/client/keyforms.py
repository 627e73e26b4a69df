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

Beyond the whole base64 tokens, the key is found inside a longer base64
text (``{"key":"<key>"}`` or ``user:<key>`` encoded, at any of the three
alignments), and so is the Authorization token (``Basic <token>`` encoded
again): for each alignment, the characters of the encoding that depend on
the key alone, standard or URL-safe alphabet, together with the character
on either side that holds some of its bits. A base64 text may be wrapped
(a line break, CR LF or LF, or its JSON escape, between any two of its
characters, as MIME does every 76). The key's bytes, and the token's, in
hexadecimal (either case) are masked too.

A short key gives short forms that ordinary text could hold by chance, so
a form that carries fewer than 48 bits of the key is not looked for: the
key inside a longer base64 text needs a key of 7 bytes or more (8 base64
characters at each alignment), its hexadecimal a key of 6 bytes or more.
The key itself, its escapes and its whole base64 tokens are masked
whatever its length.

Not looked for: the key in UTF-16 or other non-UTF-8 bytes, ``%uXXXX``
escapes, full-width forms, invisible characters between its characters,
hexadecimal with separators (``73 6b``, ``73:6b``) or wrapped, base64 of
the key spelled otherwise (URL-escaped, say) before it was encoded, and
other encodings (base32, quoted-printable, compression).

Hex digits match in either case; letters of the key match only as given,
since a key spelled in another case is another key.
"""

from __future__ import annotations

import base64
import functools
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
    of the ways the module's docstring lists; the key and the token in
    hexadecimal, and inside a longer base64 text (see the module).
    """

    __slots__ = ("_bytes", "_text")

    def __init__(self, key: str) -> None:
        self._text, self._bytes = _compiled(key)

    def __repr__(self) -> str:
        return "KeyScrubber(********)"

    def text(self, text: str) -> str:
        """``text`` with every form of the key replaced by the mask."""
        return self._text.sub(MASK, text)

    def data(self, data: bytes) -> bytes:
        """``data`` with every form of the key, in ASCII or UTF-8, masked."""
        if self._bytes is None:
            # An ASCII pattern reads bytes decoded as Latin-1 (one character
            # a byte) exactly as it would read the bytes themselves.
            return self._text.sub(MASK, data.decode("latin-1")).encode("latin-1")
        return self._bytes.sub(MASK.encode("ascii"), data)

    def found_in(self, data: bytes) -> bool:
        """Whether ``data`` holds the key in any form."""
        if self._bytes is None:
            return self._text.search(data.decode("latin-1")) is not None
        return self._bytes.search(data) is not None


@functools.lru_cache(maxsize=2)
def _compiled(key: str) -> tuple[re.Pattern[str], re.Pattern[bytes] | None]:
    """The scrubbing patterns of ``key``: as text, and as bytes when needed.

    Building one takes tens of milliseconds, and every worker of a run
    needs the same: they are made once per key (the key is in this
    process's memory for the run anyway). For an ASCII pattern, as every
    ASCII key gives, the text pattern serves for bytes too (see ``data``).
    """
    pattern = _pattern(key)
    if pattern.isascii():
        return re.compile(pattern), None
    return re.compile(pattern), re.compile(pattern.encode("utf-8"))


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


# Fewer bits of the key than this in a derived form (a base64 core, a hex
# dump) and ordinary text could hold it by chance: such a form is not used.
MIN_BITS: Final = 48

# Between two characters of a base64 text: a line break as MIME wraps it
# (CR LF or LF), or that break JSON-escaped, at most once.
_WRAP: Final = r"(?:\r?\n|\\r\\n|\\n)?"

_URL_SAFE: Final = str.maketrans("+/", "-_")

# One way to spell a character: the literal character it starts with, and
# the pattern of the rest ("%" and "(?i:(?:25)*2f)" for "%2F").
_Spelling = tuple[str, str]


def _pattern(key: str) -> str:
    """One regular expression matching every form of ``key``.

    Every alternative starts with a literal character, so that the regular
    expression engine can skip, at full speed, the places where none of
    them can start; the alternatives are grouped by that character.
    """
    # (length, first character, rest): sorted longest first, so that where
    # two forms start at the same place the longer one is masked whole.
    forms: list[tuple[int, str, str]] = []
    led: list[tuple[int, str]] = []

    def add(length: int, units: list[list[_Spelling]], glue: str) -> None:
        rest = "".join(glue + _group(unit) for unit in units[1:])
        firsts: dict[str, list[str]] = {}
        for first, after in units[0]:
            firsts.setdefault(first, []).append(after)
        for first, afters in firsts.items():
            forms.append((length, first, _either(afters) + rest))

    for form in key_forms(key):
        # Each character in any spelling; a base64 token also plain and
        # wrapped as MIME wraps it (both at once would make the expression
        # take seconds to compile).
        add(len(form), [_spellings(c) for c in form], "")
        if form != key:
            wrapped = _WRAP.join(re.escape(c) for c in form)
            forms.append((len(form), form[0], wrapped[len(re.escape(form[0])) :]))

    raw = key.encode("utf-8")
    token = base64.b64encode(raw + b":").rstrip(b"=")
    for secret in (raw, token):
        if len(secret) * 8 >= MIN_BITS:
            digits = secret.hex()
            for first in dict.fromkeys((digits[0], digits[0].upper())):
                forms.append((len(digits), first, f"(?i:{digits[1:]})"))
        for lead, core, trail in _base64_cores(secret):
            for alphabet in (None, _URL_SAFE):
                if alphabet is not None:
                    lead, core, trail = (
                        s.translate(alphabet) for s in (lead, core, trail)
                    )
                after = f"(?:{_WRAP}[{re.escape(trail)}])?" if trail else ""
                # The core in plain base64, perhaps wrapped, alone and with
                # the character before it. Spelling each of its characters
                # in every escape, as the key's own forms are, would make
                # the expression take seconds to compile for every run.
                plain = _WRAP.join(re.escape(c) for c in core) + after
                if lead:
                    plain = f"(?:[{re.escape(lead)}]{_WRAP})?" + plain
                led.append((len(core), plain))

    forms.sort(key=lambda form: form[0], reverse=True)
    grouped: dict[str, list[str]] = {}
    for _, first, rest in forms:
        grouped.setdefault(first, []).append(rest)
    # The base64 cores come last: each may start with the character before
    # it (a class of characters, not a literal), and each is shorter than
    # the whole tokens above, which are masked whole where both match.
    led.sort(key=lambda form: form[0], reverse=True)
    # No form at all cannot happen (the token of "key:" is never empty), but
    # an empty pattern would match everywhere: match nowhere instead.
    return (
        "|".join(
            [re.escape(first) + _either(rests) for first, rests in grouped.items()]
            + [pattern for _, pattern in led]
        )
        or "(?!)"
    )


def _base64_cores(secret: bytes) -> list[tuple[str, str, str]]:
    """What base64 holds of ``secret`` wherever it lies in a longer text.

    For each of the three alignments (``secret`` after 0, 1 or 2 bytes of
    something else), the characters of the encoding that depend on
    ``secret`` alone, and the characters the one before and the one after
    them can be (they mix bits of ``secret`` with bits of their
    neighbours; empty where there is no such character). Standard
    alphabet; a core with fewer than ``MIN_BITS`` bits is left out.
    """
    cores = []
    size = len(secret)
    for shift in range(3):
        start = (8 * shift + 5) // 6  # first character free of what precedes
        end = 8 * (shift + size) // 6  # first character mixed with what follows
        if 6 * (end - start) < MIN_BITS:
            continue
        encoded = bytes(shift) + secret
        core = base64.b64encode(encoded).decode("ascii")[start:end]
        lead: set[str] = set()
        if 8 * shift % 6:
            lead = {
                base64.b64encode(
                    encoded[: shift - 1] + bytes([byte]) + encoded[shift:]
                ).decode()[start - 1]
                for byte in range(256)
            }
        trail: set[str] = set()
        if 8 * (shift + size) % 6:
            trail = {base64.b64encode(encoded).decode()[end]} | {
                base64.b64encode(encoded + bytes([byte])).decode()[end]
                for byte in range(256)
            }
        cores.append(("".join(sorted(lead)), core, "".join(sorted(trail))))
    return cores


def _either(patterns: list[str]) -> str:
    """A group matching any of ``patterns``, tried in their order."""
    if patterns == [""]:
        return ""
    return "(?:" + "|".join(patterns) + ")"


def _group(spellings: list[_Spelling]) -> str:
    """A group matching any of ``spellings``."""
    return _either([re.escape(first) + rest for first, rest in spellings])


def _spellings(char: str) -> list[_Spelling]:
    """Each way text can spell ``char``, longest first.

    Longest first: a shorter spelling that is the start of a longer one
    would leave the rest of it behind.
    """
    code = ord(char)
    found = {(char, "")}

    # URL: each UTF-8 byte as %XX; "%" itself may be escaped again (%25).
    escaped = "".join(f"%(?:25)*{byte:02x}" for byte in char.encode("utf-8"))
    found.add(("%", f"(?i:{escaped[1:]})"))
    if char == " ":
        found.add(("+", ""))

    # JSON and script escapes; an astral character as a surrogate pair.
    if code > 0xFFFF:
        high, low = divmod(code - 0x10000, 0x400)
        found.add(("\\", f"(?i:u{0xD800 + high:04x}\\u{0xDC00 + low:04x})"))
    else:
        found.add(("\\", f"(?i:u{code:04x})"))
    found.add(("\\", f"(?i:U{code:08x})"))
    if code < 0x100:
        found.add(("\\", f"(?i:x{code:02x})"))
    if char in '/"\\':
        found.add(("\\", re.escape(char)))

    # HTML: decimal and hex references, leading zeros and the semicolon
    # optional, the ampersand perhaps escaped again (&amp;#47;).
    found.add(("&", f"(?:amp;)*#0*{code};?"))
    found.add(("&", f"(?i:(?:amp;)*#x0*{code:x};?)"))
    found.update(("&", f"(?:amp;)*{re.escape(name)}") for name in _NAMED.get(char, ()))

    return sorted(found, key=lambda found: len(found[0]) + len(found[1]), reverse=True)
