"""When each submission was handed in, recorded as nbgrader records it: ``timestamp.txt``
beside the notebook in ``submitted/<student>/<assignment>/``, which nbgrader's autograde reads
(and with an assignment's due date, its late penalties apply). The time comes from the
exchange entry's name (the time nbgrader's submit wrote there), a zip member's date, or the
file's modification time."""

from __future__ import annotations

import datetime
import struct
from pathlib import Path

UTC = datetime.timezone.utc
#: What timestamp.txt holds: nbgrader's own format (its exchange's ``timestamp_format``), in UTC.
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f UTC"
#: Where a submission's time came from, as the report says it.
FROM_EXCHANGE, FROM_ZIP, FROM_FILE, FROM_ARCHIVE = "exchange", "zip", "file", "archive"
_DOS_EPOCH = (1980, 1, 1, 0, 0, 0)  # what a zip member's date is when none was set


def from_epoch(seconds: float | None) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromtimestamp(seconds, UTC) if seconds is not None else None
    except (OverflowError, OSError, ValueError):
        return None


def parse(text: str) -> datetime.datetime | None:
    """A timestamp as nbgrader writes it (in an exchange entry's name, in timestamp.txt), in
    UTC; None if it is not one."""
    from nbgrader.utils import parse_utc

    try:
        parsed = parse_utc(text.strip())
    except Exception:  # noqa: BLE001 - dateutil raises several kinds for what it cannot read
        return None
    return parsed.replace(tzinfo=UTC) if parsed is not None else None


def zip_member_time(info, archive_mtime: float | None) -> tuple[datetime.datetime | None, str]:
    """When a zip member was last changed: its extended timestamp (UTC) when the archive has
    one, else its date (local time, as zip archives keep it), else the archive's own time."""
    extra, at = info.extra or b"", 0
    while at + 4 <= len(extra):
        kind, size = struct.unpack("<HH", extra[at:at + 4])
        body = extra[at + 4:at + 4 + size]
        if kind == 0x5455 and len(body) >= 5 and body[0] & 1:
            when = from_epoch(struct.unpack("<i", body[1:5])[0])
            if when:
                return when, FROM_ZIP
        at += 4 + size
    if tuple(info.date_time) != _DOS_EPOCH:
        try:
            return datetime.datetime(*info.date_time).astimezone(UTC), FROM_ZIP
        except (ValueError, OverflowError, OSError):
            pass
    return from_epoch(archive_mtime), FROM_ARCHIVE


def write(folder: Path, when: datetime.datetime) -> None:
    (folder / "timestamp.txt").write_text(when.astimezone(UTC).strftime(TIMESTAMP_FORMAT))


def read(folder: Path) -> datetime.datetime | None:
    path = folder / "timestamp.txt"
    try:
        return parse(path.read_text()) if path.is_file() and not path.is_symlink() else None
    except (OSError, UnicodeDecodeError):
        return None
