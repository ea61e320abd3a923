"""On-disk cache of parsed, validated OBO ontologies, keyed by the file's bytes.

Parsing GO and HP with fastobo is about half of an ingest's CPU time and most of a `gp predict
--new-data` call's start-up, yet the files rarely change. After `load_ontology` has parsed and
validated a file, what it extracted (term names, obsolescence, alt_ids, replacements, namespaces and
the selected edges) is written here as JSON; a later load of the same bytes with the same relations
reads that instead of parsing. The key covers everything the result depends on: sha256 of the file's
bytes, the relations, the namespace roots, the cache format and fastobo's version. A cache entry only
exists for a file that passed every check, so a hit needs no re-validation.

Location: `$GP_CACHE_DIR/ontologies`, else `$XDG_CACHE_HOME/gp_distributed/ontologies`, else
`~/.cache/gp_distributed/ontologies`; `GP_CACHE_DIR=` (empty) turns the cache off. The cache is an
optimisation only: an unreadable or damaged entry is a miss (the file is parsed again and the entry
rewritten), and an unwritable directory just means no entry is kept. Entries are written to a
temporary file and renamed, so a reader never sees half an entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import fastobo

_FORMAT = 1  # bump when the entry's layout or what load_ontology extracts changes
_STANZA_FIELDS = ("names", "alternatives", "replaced_by", "namespaces")

Edges = dict[str, tuple[str, ...]]


def cache_directory() -> Path | None:
    """Where entries live, or None when `GP_CACHE_DIR` is set to the empty string."""
    explicit = os.environ.get("GP_CACHE_DIR")
    if explicit is not None:
        return Path(explicit) / "ontologies" if explicit else None
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gp_distributed" / "ontologies"


def entry_key(raw: bytes, relations: tuple[str, ...], namespace_roots: Mapping[str, str] | None) -> str:
    """Hex digest naming the entry of these file bytes loaded with these options."""
    options = json.dumps([_FORMAT, fastobo.__version__, list(relations), sorted((namespace_roots or {}).items())])
    return hashlib.sha256(hashlib.sha256(raw).digest() + options.encode()).hexdigest()


def read_entry(key: str) -> tuple[dict[str, Any], dict[str, Edges]] | None:
    """(stanza fields, parents by relation) of entry `key`, or None when absent or damaged."""
    directory = cache_directory()
    if directory is None:
        return None
    try:
        entry = json.loads((directory / f"{key}.json").read_text(encoding="utf-8"))
        stanzas = {name: dict(entry[name]) for name in _STANZA_FIELDS}
        stanzas["obsolete"] = set(entry["obsolete"])
        stanzas["default_namespace"] = entry["default_namespace"]
        stanzas["data_version"] = entry["data_version"]
        parents = {
            relation: {term: tuple(term_parents) for term, term_parents in edges.items()}
            for relation, edges in entry["parents_by_relation"].items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # absent, torn or foreign: parse the file instead
    return stanzas, parents


def write_entry(key: str, stanzas: Mapping[str, Any], parents_by_relation: Mapping[str, Edges]) -> None:
    """Store an entry atomically; a directory that cannot be written to is skipped without error."""
    directory = cache_directory()
    if directory is None:
        return
    entry = {name: stanzas[name] for name in (*_STANZA_FIELDS, "default_namespace", "data_version")}
    entry["obsolete"] = sorted(stanzas["obsolete"])
    entry["parents_by_relation"] = parents_by_relation
    try:
        directory.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=directory, suffix=".tmp")
    except OSError:
        return
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(entry, handle)
        os.replace(temporary, directory / f"{key}.json")
    except OSError:
        Path(temporary).unlink(missing_ok=True)
