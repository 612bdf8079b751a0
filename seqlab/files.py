"""Reading text files as every part of seqlab does: gzip recognised by its content (whatever the name), UTF-8 with
an undecodable line named by its file and line number."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Iterator, Union

from seqlab import SeqlabError


def open_binary(path: Path):
    """The file's bytes, gunzipped when it starts with the gzip magic number (whatever its name)."""
    handle = open(path, "rb")
    if handle.read(2) == b"\x1f\x8b":
        handle.close()
        return gzip.open(path, "rb")
    handle.seek(0)
    return handle


def iter_lines(path: Path, lenient: bool = False) -> Iterator[tuple[int, Union[str, SeqlabError]]]:
    """``(line_number, text)`` of a UTF-8 file (gzip recognised by content), line ends stripped. Invalid UTF-8 is a
    SeqlabError naming the line: raised, or (``lenient``) yielded in the line's place so a reader can skip it."""
    try:
        handle = open_binary(path)
    except OSError as error:
        raise SeqlabError(f"{path}: cannot read ({error.strerror or error})") from None
    with handle:
        try:
            for number, raw in enumerate(handle, 1):
                try:
                    yield number, raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError as error:
                    bad = SeqlabError(f"{path}:{number}: invalid UTF-8 (byte {error.start + 1} of the line)")
                    if not lenient:
                        raise bad from None
                    yield number, bad
        except (EOFError, gzip.BadGzipFile, OSError) as error:
            raise SeqlabError(f"{path}: truncated or corrupt compressed file ({error})") from None
