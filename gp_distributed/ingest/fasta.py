"""FASTA reader: id -> validated, uppercase sequence bytes, streamed from a plain or gzip file.

Rules (each violation raises `InputError` with the file, line and, for a character, column):
- a record is a `>` header line followed by sequence lines; text before the first header is an error;
- the id is the header's first whitespace-separated token; for UniProt headers (`>sp|P12345|NAME_HUMAN
  ...`, `>tr|...`) it is the accession between the first two bars; an empty id is an error;
- ids are unique; sequences are non-empty;
- blank lines and trailing whitespace are ignored; any other character must be in the alphabet,
  upper or lower case (the result is uppercase):
  - `dna`: IUPAC nucleotide codes `ACGTU RYSWKMBDHVN`; gap characters (`-`, `.`) are rejected,
    since the store holds unaligned sequences;
  - `protein`: the 20 standard amino acids plus `X` (unknown), `U` (selenocysteine),
    `O` (pyrrolysine), `B` (D/N), `Z` (E/Q); one `*` (stop) as the very last character of a record
    is removed, a `*` anywhere else is rejected. `J` (I/L) is not accepted.
"""

from __future__ import annotations

import re
from pathlib import Path

from gp_distributed.config import Alphabet
from gp_distributed.errors import InputError
from gp_distributed.ingest.textfile import iter_line_blocks

_LETTERS: dict[str, bytes] = {
    "dna": b"ACGTURYSWKMBDHVN",
    "protein": b"ACDEFGHIKLMNPQRSTVWY" + b"XUOBZ",
}
_ALLOWED: dict[str, bytes] = {name: letters + letters.lower() for name, letters in _LETTERS.items()}
_INVALID: dict[str, re.Pattern[bytes]] = {
    name: re.compile(b"[^" + re.escape(allowed) + b"]") for name, allowed in _ALLOWED.items()
}
_UNIPROT_PREFIXES = (b"sp|", b"tr|")


def read_fasta(path: str | Path, alphabet: Alphabet) -> dict[str, bytes]:
    """Read every record of the FASTA file `path` (plain or gzip).

    Returns id -> sequence in file order; sequences are uppercase ASCII bytes of the alphabet's
    letters (no stop, no whitespace). Raises `InputError` on any violation of the module rules.
    """
    if alphabet not in _ALLOWED:
        raise ValueError(f"alphabet must be 'protein' or 'dna', not {alphabet!r}")
    records = _Records(Path(path), alphabet)
    for first_line, block in iter_line_blocks(path):
        records.feed(first_line, block)
    return records.finish()


class _Records:
    """Parser state: whole blocks of lines go in, validated records come out.

    Work is done per block and per record with bytes methods (find, replace, translate), not per
    line, so parsing runs near decompression speed; only a record that fails the fast check is
    re-read line by line, to strip trailing blanks or to locate the bad character.
    """

    def __init__(self, path: Path, alphabet: Alphabet):
        self.path = path
        self.alphabet = alphabet
        self.sequences: dict[str, bytes] = {}
        self.header_lines: dict[str, int] = {}
        self.record_id: str | None = None
        self.header_line = 0
        self.body: list[bytes] = []  # the current record's sequence text: pieces of whole lines

    def feed(self, first_line: int, block: bytes) -> None:
        """Consume one block of whole lines whose first line is number `first_line`."""
        starts = _record_starts(block)
        if not starts:  # the whole block continues the current record (or the preamble)
            self._continue(first_line, block)
            return
        line_number = first_line
        if starts[0] > 0:
            head = block[: starts[0] - 1]  # up to the newline before the first header
            self._continue(first_line, head)
            line_number += head.count(b"\n") + 1
        for start, end in zip(starts, starts[1:]):
            segment = block[start + 1 : end - 1]  # header line without '>', then its sequence lines
            self._start(line_number, segment)
            line_number += segment.count(b"\n") + 1
        self._start(line_number, block[starts[-1] + 1 :])

    def finish(self) -> dict[str, bytes]:
        """Close the last record and return all of them."""
        if self.record_id is None:
            raise InputError(self.path, "empty file: no FASTA records")
        self._close()
        return self.sequences

    def _continue(self, first_line: int, text: bytes) -> None:
        """Take whole lines that belong to the current record, or precede the first header."""
        if self.record_id is not None:
            self.body.append(text)
            return
        for line_number, line in enumerate(text.split(b"\n"), first_line):
            if line.strip():
                message = "sequence data before the first '>' header (not a FASTA file?)"
                raise InputError(self.path, message, line=line_number)

    def _start(self, line_number: int, segment: bytes) -> None:
        """Begin a record from its header line (without '>') and the lines after it in the block."""
        if self.record_id is not None:
            self._close()
        header, newline, rest = segment.partition(b"\n")
        record_id = _record_id(self.path, line_number, header)
        if record_id in self.header_lines:
            message = f"duplicate sequence id {record_id!r} (first at line {self.header_lines[record_id]})"
            raise InputError(self.path, message, line=line_number)
        self.header_lines[record_id] = self.header_line = line_number
        self.record_id = record_id
        self.body = [rest] if newline else []

    def _close(self) -> None:
        # Fast path: the pieces hold whole lines, so dropping every newline after a plain join
        # yields the sequence; only lowercase input or a failed check takes a second look.
        sequence = b"".join(self.body).replace(b"\n", b"")
        if self.alphabet == "protein" and sequence.endswith(b"*"):
            sequence = sequence[:-1]
        letters = _LETTERS[self.alphabet]
        if sequence.translate(None, letters):
            sequence = sequence.upper()
            if sequence.translate(None, letters):  # trailing blanks, or an error
                sequence = self._checked_by_line(b"\n".join(self.body))
        if not sequence:
            raise InputError(self.path, f"sequence {self.record_id!r} is empty", line=self.header_line)
        self.sequences[self.record_id] = sequence  # type: ignore[index]  # set by _start

    def _checked_by_line(self, body: bytes) -> bytes:
        """The record's sequence with trailing blanks removed; raise at the first invalid character."""
        lines = [(n, line.rstrip()) for n, line in enumerate(body.split(b"\n"), self.header_line + 1)]
        lines = [(n, line) for n, line in lines if line]
        if self.alphabet == "protein" and lines and lines[-1][1].endswith(b"*"):
            lines[-1] = (lines[-1][0], lines[-1][1][:-1])
        for line_number, line in lines:
            found = _INVALID[self.alphabet].search(line)
            if found is not None:
                raise InputError(
                    self.path,
                    _invalid_message(self.alphabet, self.record_id or "", line[found.start()]),
                    line=line_number,
                    column=found.start() + 1,
                )
        return b"".join(line for _, line in lines).upper()


def _record_starts(block: bytes) -> list[int]:
    """Offsets of the '>' characters that begin a line of `block` (find() is a fast byte scan)."""
    starts = []
    at = block.find(b">")
    while at >= 0:
        if at == 0 or block[at - 1] == 0x0A:  # a '>' inside a header's description is not a start
            starts.append(at)
        at = block.find(b">", at + 1)
    return starts


def _record_id(path: Path, line_number: int, header: bytes) -> str:
    tokens = header.split(None, 1)
    token = tokens[0] if tokens else b""
    if token.startswith(_UNIPROT_PREFIXES):
        token = token.split(b"|", 2)[1]
    if not token:
        raise InputError(path, "header has an empty sequence id", line=line_number)
    try:
        return token.decode("ascii")
    except UnicodeDecodeError:
        raise InputError(path, f"sequence id {token!r} is not ASCII", line=line_number) from None


def _invalid_message(alphabet: Alphabet, record_id: str, byte: int) -> str:
    shown = repr(chr(byte)) if byte < 0x80 else f"byte 0x{byte:02x}"
    if byte == ord("*"):
        why = "'*' (stop) is allowed only as the last character of a protein sequence"
    elif byte in b"-.":
        why = "gap characters are not allowed (give unaligned sequences)"
    else:
        why = f"allowed: {_LETTERS[alphabet].decode()} (either case)"
    return f"invalid {alphabet} character {shown} in sequence {record_id!r}: {why}"
