"""Streaming line reader shared by every ingest reader: plain or gzip input, errors as `InputError`.

Compression is detected from the content (gzip magic bytes), not the file name, and multi-member
gzip (bgzip) is read whole. A UTF-8 byte order mark at the start (Windows editors and Excel write one)
is not text and is dropped. Lines are numbered from 1, returned without their line end (`\\n` or
`\\r\\n`); every line is returned, blank ones included, so numbers always match the file. Any failure
to read (missing file, truncated or corrupt gzip, text that is not UTF-8) raises `InputError` naming
the file and, where one exists, the first line that could not be read.
"""

from __future__ import annotations

import gzip
import io
import itertools
import zlib
from collections.abc import Iterator
from pathlib import Path

from gp_distributed.errors import InputError

_GZIP_MAGIC = b"\x1f\x8b"
_UTF8_BOM = b"\xef\xbb\xbf"
# read1() returns what one decompression step produced, so everything decompressed before a
# truncation point reaches the caller and the reported line is the first incomplete one.
_READ_BYTES = 1 << 20


def _decompressed(raw: io.BufferedReader) -> io.BufferedIOBase:
    """`raw` itself, or a gzip reader over it when it starts with the gzip magic bytes."""
    if raw.peek(2)[:2] == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb")
    return raw


def iter_line_blocks(path: str | Path) -> Iterator[tuple[int, bytes]]:
    """Yield (number of the block's first line, block of whole lines joined by `\\n`), streamed.

    Blocks are consecutive, hold at least one line and split the file only at line ends; their
    size follows the reads (tens of KiB), so a caller can process many lines per Python step.
    """
    path = Path(path)
    lines_done = 0
    try:
        with open(path, "rb") as raw, _decompressed(raw) as stream:
            pending: list[bytes | memoryview] = []  # the start of a line that continues in the next read
            head = stream.read(len(_UTF8_BOM)).removeprefix(_UTF8_BOM)  # read() fills it across gzip members
            for chunk in itertools.chain([head], iter(lambda: stream.read1(_READ_BYTES), b"")):
                cut = chunk.rfind(b"\n")
                if cut < 0:
                    pending.append(chunk)
                    continue
                pending.append(memoryview(chunk)[:cut])  # a view: join() below is the only copy
                block = b"".join(pending)
                pending = [chunk[cut + 1 :]]
                if b"\r" in block:  # CRLF files; the block's last line lost its \n at the cut
                    block = block.replace(b"\r\n", b"\n").removesuffix(b"\r")
                yield lines_done + 1, block
                lines_done += block.count(b"\n") + 1
            last = b"".join(pending)
            if last:
                yield lines_done + 1, last.removesuffix(b"\r")
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        if isinstance(error, EOFError):
            reason = "gzip data ends early (truncated file)"
        else:
            reason = f"corrupt gzip data ({error})"
        raise InputError(path, f"cannot decompress: {reason}", line=lines_done + 1) from None
    except OSError as error:
        raise InputError(path, f"cannot read: {error.strerror or error}") from None


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield (line_number, text) for every line of the UTF-8 file `path`, streamed."""
    for first, lines in iter_line_runs(path):
        yield from enumerate(lines, first)


def iter_line_runs(path: str | Path) -> Iterator[tuple[int, list[str]]]:
    """Yield (number of the run's first line, run of consecutive lines) for the UTF-8 file `path`.

    The same lines as `iter_lines`, handed over in runs of hundreds or more so that a hot loop can iterate
    them itself (`enumerate(lines, first)`) instead of paying for a generator step per line.
    """
    path = Path(path)
    for first, block in iter_line_blocks(path):
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError as error:
            line_start = block.rfind(b"\n", 0, error.start) + 1
            column = len(block[line_start : error.start].decode("utf-8")) + 1
            raise InputError(
                path,
                f"not UTF-8 text (byte 0x{block[error.start]:02x})",
                line=first + block.count(b"\n", 0, error.start),
                column=column,
            ) from None
        yield first, text.split("\n")


def split_row(path: Path, line_number: int, text: str, columns: int | tuple[int, ...]) -> list[str]:
    """Split one tab-separated line; raise `InputError` unless it has `columns` fields (a count or
    a tuple of accepted counts)."""
    fields = text.split("\t")
    allowed = (columns,) if isinstance(columns, int) else columns
    if len(fields) not in allowed:
        expected = " or ".join(map(str, allowed))
        raise InputError(path, f"expected {expected} tab-separated columns, found {len(fields)}", line=line_number)
    return fields
