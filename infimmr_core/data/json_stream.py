"""The rows of a JSON array file, one at a time, in bounded memory.

The standard library parses a JSON document only whole, so a 30 GB array (or one 30 GB element) would be loaded
whole. Here the file is scanned for the extent of each element (brackets and strings tracked, no values built), and
only an element of at most `max_chars` characters is kept as text for `json.loads`; a longer one is skipped while it
is scanned. A malformed element is still one element (its extent is found by bracket counting), so the reader reports
it and goes on; only a file whose structure breaks (it ends inside an element, a stray bracket) stops the scan.

Accepted shapes: `[row, row, ...]`, or an object holding exactly one array among its values
(`{"version": 2, "data": [...]}`), as dataset dumps are written.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from typing import BinaryIO, Iterator

_CHUNK = 1 << 20
_OUTSIDE = re.compile(r'[\[\]{}",:]')  # what changes the scanner's state outside a string
_INSIDE = re.compile(r'["\\]')  # ... and inside one
_SPACE = " \t\r\n"
_SHAPE = "a JSON source must be an array of rows or an object holding one array"


class JsonStreamError(ValueError):
    """The file's structure is broken or not an array of rows (UnicodeDecodeError is raised as is)."""


@dataclass
class Element:
    text: str | None  # None when longer than max_chars: skipped, never held
    size: int  # characters


class _Text:
    """The decoded text of a binary stream; text before the current element is dropped, so memory holds the current
    element (when kept) and one chunk."""

    def __init__(self, stream: BinaryIO):
        self.stream = stream
        self.decoder = codecs.getincrementaldecoder("utf-8-sig")("strict")  # a leading BOM is not content
        self.buf, self.pos, self.eof = "", 0, False

    def more(self) -> bool:
        """Append the next chunk; False at the end of the stream."""
        if self.eof:
            return False
        chunk = self.stream.read(_CHUNK)
        self.eof = not chunk
        self.buf += self.decoder.decode(chunk, final=self.eof)
        return bool(chunk)

    def drop_before(self, index: int) -> int:
        self.buf = self.buf[index:]
        self.pos -= index
        return index

    def next_token(self) -> str | None:
        """The next non-space character (consumed), or None at the end of the stream."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in _SPACE:
                self.pos += 1
            if self.pos < len(self.buf):
                self.pos += 1
                return self.buf[self.pos - 1]
            self.drop_before(self.pos)
            if not self.more():
                return None

    def peek_token(self) -> str | None:
        token = self.next_token()
        if token is not None:
            self.pos -= 1
        return token


def iter_array(stream: BinaryIO, max_chars: int) -> Iterator[Element]:
    """The elements of the top-level array (or of the one array inside a top-level object), in order."""
    text = _Text(stream)
    first = text.next_token()
    if first == "[":
        yield from _elements(text, max_chars)
    elif first == "{":
        yield from _object_with_array(text, max_chars)
    else:
        raise JsonStreamError(_SHAPE)
    if text.next_token() is not None:
        raise JsonStreamError("text after the end of the JSON document")


def _elements(text: _Text, max_chars: int) -> Iterator[Element]:
    """After '[': every element, through the closing ']'."""
    if text.peek_token() == "]":
        text.next_token()
        return
    while True:
        element, end = _scan_value(text, max_chars, stop=",]")
        yield element
        if end == "]":
            return


def _object_with_array(text: _Text, max_chars: int) -> Iterator[Element]:
    """After '{': the elements of the one array among its values, through the closing '}'."""
    arrays = 0
    if text.peek_token() == "}":
        raise JsonStreamError(_SHAPE)
    while True:
        if text.peek_token() != '"':
            raise JsonStreamError("invalid JSON object at the top level")
        _scan_value(text, max_chars, stop=":")  # the key
        if text.peek_token() == "[":
            if arrays:
                raise JsonStreamError(f"{_SHAPE}, and this object holds more than one")
            text.next_token()
            arrays += 1
            yield from _elements(text, max_chars)
            end = text.next_token()
        else:
            _, end = _scan_value(text, max_chars, stop=",}")
        if end == "}":
            break
        if end != ",":
            raise JsonStreamError("invalid JSON object at the top level")
    if not arrays:
        raise JsonStreamError(_SHAPE)


def _scan_value(text: _Text, max_chars: int, stop: str) -> tuple[Element, str]:
    """Scan one value, through the first character of `stop` at depth 0 outside strings (consumed and returned).
    The value's text is kept only while it is at most `max_chars` long."""
    depth, in_string, kept = 0, False, True
    start = pos = text.pos  # start: where the value's kept text begins in the buffer
    dropped = 0  # characters of this value no longer in the buffer
    while True:
        if pos >= len(text.buf):
            if kept and pos - start > max_chars:
                kept = False
            if not kept:
                dropped += pos - start
                start = pos
            moved = text.drop_before(start)
            start, pos = start - moved, pos - moved
            if not text.more():
                raise JsonStreamError("the file ends inside a row")
            continue
        if in_string:
            match = _INSIDE.search(text.buf, pos)
            if match is None:
                pos = len(text.buf)
            elif match.group() == '"':
                in_string, pos = False, match.end()
            elif match.end() < len(text.buf):
                pos = match.end() + 1  # a backslash and the character it escapes
            else:
                pos = match.start()  # the escaped character is in the next chunk
                if not text.more():
                    raise JsonStreamError("the file ends inside a string")
            continue
        match = _OUTSIDE.search(text.buf, pos)
        if match is None:
            pos = len(text.buf)
            continue
        char, pos = match.group(), match.end()
        if char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
        elif depth > 0 and char in "]}":
            depth -= 1
        elif depth == 0 and char in stop:
            size = dropped + (pos - 1 - start)
            value = text.buf[start:pos - 1].strip(_SPACE) if kept and size <= max_chars else None
            text.pos = pos
            return Element(value, size), char
        elif depth == 0 and char in "]}:,":
            raise JsonStreamError(f"unexpected {char!r} in the JSON document")
