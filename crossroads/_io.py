"""Small file helpers shared by the data loaders."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["file_sha256", "iter_jsonl", "open_text", "read_yaml"]


def open_text(path: Path) -> IO[str]:
    """Open a text file for reading, transparently decompressing ``.gz``."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return path.open("r", encoding="utf-8", newline="")


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_yaml(path: Path, what: str) -> Any:
    """Parse a YAML file; a missing file or malformed YAML is a ConfigError naming file:line:column."""
    import yaml

    from .errors import ConfigError

    if not path.exists():
        raise ConfigError(f"{what} file {path} does not exist")
    if path.is_dir():
        raise ConfigError(f"{what} file {path} is a directory; give the path of a YAML file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
                          f"save the {what} file as UTF-8") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: malformed YAML: {problem}") from exc


def iter_jsonl(path: Path) -> Iterator[tuple[str, int, Any]]:
    """Yield ``("file:line", line number, parsed row)`` for each non-blank line of a JSONL(.gz) file;
    a line that is not JSON is a ConfigError naming file and line."""
    import json

    from .errors import ConfigError

    with open_text(path) as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                yield where, n, json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{where}: not valid JSON: {exc.msg}") from exc
