"""Grouping one-file-per-channel layouts into images: ``<field>_w1.tif ... <field>_w5.tif`` -> one image.

``dataset.channel_files`` lists one file-name pattern per channel, in channel order, each with one
``*`` standing for the field (e.g. ``["*_w1.tif", "*_w2.tif"]``). Files in the same folder whose
``*`` parts agree are one image. A field that lacks a channel is an error naming it; files that
match no pattern are left out with a log line.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from medviz.errors import ConfigError, DataError

log = logging.getLogger("medviz")


def _split(pattern: str) -> tuple[str, str]:
    if pattern.count("*") != 1 or "/" in pattern:
        raise ConfigError(
            f"dataset.channel_files: each pattern needs exactly one '*' for the field and no folder, e.g. "
            f"'*_w1.tif'; got '{pattern}'"
        )
    prefix, suffix = pattern.split("*")
    return prefix, suffix


def _field(name: str, prefix: str, suffix: str) -> str | None:
    if len(name) > len(prefix) + len(suffix) and name.startswith(prefix) and name.endswith(suffix):
        return name[len(prefix) : len(name) - len(suffix)]
    return None


def group_channel_files(files: Sequence[Path], patterns: Sequence[str], root: Path) -> list[tuple[Path, ...]]:
    """Files -> one tuple of paths per image (in channel order), sorted by folder and field."""
    if len(patterns) < 1:
        raise ConfigError("dataset.channel_files is empty: give one pattern per channel, e.g. ['*_w1.tif', '*_w2.tif']")
    parts = [_split(p) for p in patterns]
    fields: dict[tuple[Path, str], dict[int, Path]] = {}
    unmatched = []
    for path in files:
        hits = [(c, f) for c, (pre, suf) in enumerate(parts) if (f := _field(path.name, pre, suf)) is not None]
        if not hits:
            unmatched.append(path)
            continue
        if len(hits) > 1:
            matched = ", ".join(patterns[c] for c, _ in hits)
            raise ConfigError(f"{path} matches several channel patterns ({matched}): make the patterns distinct")
        channel, field = hits[0]
        fields.setdefault((path.parent, field), {})[channel] = path
    if unmatched:
        log.warning(
            f"{root}: {len(unmatched)} image files match none of dataset.channel_files {list(patterns)} and are left "
            f"out (e.g. {unmatched[0].relative_to(root)})"
        )
    incomplete = {key: chans for key, chans in fields.items() if len(chans) != len(patterns)}
    if incomplete:
        (folder, field), chans = next(iter(sorted(incomplete.items())))
        missing = [patterns[c].replace("*", field) for c in range(len(patterns)) if c not in chans]
        raise DataError(
            f"{len(incomplete)} field(s) lack a channel file, e.g. '{field}' in {folder}: "
            f"missing {', '.join(missing)}. "
            "Add the missing files, or move the incomplete fields out of the folder"
        )
    if not fields:
        raise DataError(f"no files in {root} match dataset.channel_files {list(patterns)}")
    return [tuple(chans[c] for c in range(len(patterns))) for _, chans in sorted(fields.items())]
