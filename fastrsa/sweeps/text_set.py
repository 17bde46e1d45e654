"""The texts of a sweep (sentences, captions, prompts): read a batch at a time, with a content hash.

    texts = text_set("sentences.txt")       # one text per line; or .jsonl, or a list of str
    for start, batch in texts.batches(batch_size=64):
        ...                                  # batch: list[str], texts[start : start + len(batch)]

A file is never held in memory: counting reads it once in 1 MiB blocks, `check` and every pass
of `batches` or `fingerprint` read it again a line at a time.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from .._checks import check_count, one_line

__all__ = ["TEXT_SUFFIXES", "TextSet", "text_set"]

TEXT_SUFFIXES = (".txt", ".jsonl")

_BOM = b"\xef\xbb\xbf"


class TextSet:
    """N non-empty texts, from a file (.txt: one text per line; .jsonl: one JSON string, or an
    object with a "text" string, per line) or a list of str.

    n: the number of texts. fingerprint: sha256 hex over "texts N\\n" then, for each text, its
    UTF-8 byte length, "\\n" and its UTF-8 bytes (computed on first use; equal for a file and a
    list of the same texts). names: None (texts have no names). path: the file, or None.

    Files: UTF-8, a leading BOM stripped, CRLF or LF line ends, a final newline optional; an
    empty (or whitespace-only) line is an error naming its line number, as is a decode error
    (with its byte offset) or a bad JSON line. Holds in memory: one line of a file, or the
    caller's list (its items, not copies).
    """

    def __init__(self, path: str | os.PathLike | None = None, texts: Sequence[str] | None = None):
        if (path is None) == (texts is None):
            raise TypeError("TextSet takes a path or texts (use text_set(texts))")
        self.names: list[str] | None = None
        self.path = None if path is None else Path(path)
        self.texts = None if texts is None else tuple(texts)
        self.n = len(self.texts) if self.texts is not None else 0
        if self.path is not None:
            self.n = _count_lines(self.path)

    def __repr__(self) -> str:
        return f"TextSet(n={self.n}, {self.path if self.path is not None else 'list'})"

    def __iter__(self) -> Iterator[str]:
        """Every text, in order (a file is read a line at a time)."""
        if self.texts is not None:
            yield from self.texts
            return
        assert self.path is not None
        count = 0
        for text in _read_texts(self.path):
            count += 1
            yield text
        if count != self.n:  # the file changed since the set was made
            raise ValueError(f"texts: {self.path} changed: it held {self.n} texts, now {count}")

    @cached_property
    def fingerprint(self) -> str:
        """sha256 hex of the texts (see the class docstring)."""
        h = hashlib.sha256(f"texts {self.n}\n".encode())
        for text in self:
            data = text.encode("utf-8")
            h.update(f"{len(data)}\n".encode())
            h.update(data)
        return h.hexdigest()

    def check(self) -> None:
        """Before any work: every line of a file is a text (decodes, is not empty, parses);
        ValueError naming the file and the first bad line. Lists were checked when made."""
        if self.path is not None:
            for _ in self:
                pass

    def batches(self, batch_size: int) -> Iterator[tuple[int, list[str]]]:
        """(start, texts) for consecutive batches of at most `batch_size` texts, in order.
        Holds one batch (a file is read a line at a time)."""
        batch_size = check_count(batch_size, "batch_size")
        batch: list[str] = []
        start = 0
        for text in self:
            batch.append(text)
            if len(batch) == batch_size:
                yield start, batch
                start, batch = start + batch_size, []
        if batch:
            yield start, batch


def text_set(texts: Any) -> TextSet:
    """The TextSet of a .txt or .jsonl file (a str or path), a list or tuple of str, or a
    TextSet (returned as is). Errors name what is wrong: a missing file, another suffix, a file
    without texts, a non-str or empty item (by index); the lines of a file are checked by
    `TextSet.check` (and as they are read)."""
    if isinstance(texts, TextSet):
        return texts
    if isinstance(texts, (str, os.PathLike)):
        path = Path(texts)
        if path.suffix.lower() not in TEXT_SUFFIXES:
            raise ValueError(
                f"texts: {path} is not a .txt or .jsonl file (give a list of str for texts "
                "themselves)"
            )
        if not path.exists():
            raise FileNotFoundError(f"texts: no such file: {path}")
        if not path.is_file():
            raise ValueError(f"texts: {path} is not a file")
        return TextSet(path=path)
    if isinstance(texts, (list, tuple)):
        if not texts:
            raise ValueError("texts is an empty list")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] is {type(text).__name__}; expected str")
            if not text.strip():
                raise ValueError(f"texts[{i}] is empty")
            if not _encodes(text):
                raise ValueError(f"texts[{i}] holds a lone surrogate (not Unicode text)")
        return TextSet(texts=texts)
    raise TypeError(
        "texts must be a .txt or .jsonl file or a list of str; got " + type(texts).__name__
    )


def _encodes(text: str) -> bool:
    """Whether `text` is valid Unicode (no lone surrogate, as a JSON "\\ud800" gives)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _count_lines(path: Path) -> int:
    """The lines of a file (a final newline ends the last line; it does not start another)."""
    count, last, size = 0, b"\n", 0
    try:
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                if size == 0 and block.startswith(_BOM):
                    block = block[len(_BOM) :]
                count += block.count(b"\n")
                size += len(block)
                last = block[-1:] or last
    except OSError as err:
        raise ValueError(f"texts: cannot read {path} ({err.strerror})") from None
    count += last != b"\n"
    if count == 0:
        raise ValueError(f"texts: {path} holds no texts")
    return count


def _read_texts(path: Path) -> Iterator[str]:
    """The texts of a file, a line at a time, checked (ValueError naming the file and line)."""
    jsonl = path.suffix.lower() == ".jsonl"
    offset = 0
    try:
        with open(path, "rb") as f:
            for number, raw in enumerate(f, 1):
                start = offset
                offset += len(raw)
                if number == 1 and raw.startswith(_BOM):
                    raw, start = raw[len(_BOM) :], start + len(_BOM)
                raw = raw.removesuffix(b"\n").removesuffix(b"\r")
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise ValueError(
                        f"texts: {path} is not UTF-8 text (line {number}, byte offset "
                        f"{start + err.start})"
                    ) from None
                text = _json_text(line, path, number) if jsonl else line
                if not _encodes(text):
                    raise ValueError(
                        f"texts: {path} line {number} holds a lone surrogate (not Unicode text)"
                    )
                if not text.strip():
                    raise ValueError(
                        f"texts: {path} line {number} is empty (one text per line; remove it)"
                    )
                yield text
    except OSError as err:
        raise ValueError(f"texts: cannot read {path} ({err.strerror})") from None


def _json_text(line: str, path: Path, number: int) -> str:
    """The text of one JSON line: a string, or an object's "text" string."""
    if not line.strip():
        return ""
    try:
        value = json.loads(line)
    except ValueError as err:
        raise ValueError(f"texts: {path} line {number} is not JSON ({one_line(err)})") from None
    if isinstance(value, dict):
        if "text" not in value:
            keys = sorted(value)[:5]
            raise ValueError(f'texts: {path} line {number} has no "text" field (keys: {keys})')
        value = value["text"]
    if not isinstance(value, str):
        kind = {bool: "a boolean", int: "a number", float: "a number", list: "an array"}
        raise ValueError(
            f"texts: {path} line {number} holds {kind.get(type(value), 'null')}; expected a "
            'JSON string or an object with a "text" string'
        )
    return value
