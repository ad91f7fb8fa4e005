"""The ``--pages`` selection: parsed once from the command line, checked against each PDF."""

from __future__ import annotations

import re
from dataclasses import dataclass

from wavefilter_cli.errors import InputError, UsageError

_RANGE = re.compile(r"^(\d+)(?:(-)(\d*))?$")


@dataclass(frozen=True)
class PageRange:
    """Pages ``first`` to ``last`` inclusive, 1-based; ``last`` None means to the end."""

    first: int
    last: int | None


@dataclass(frozen=True)
class PageSelection:
    """A parsed ``--pages`` value such as ``3-10,15`` or ``20-``."""

    spec: str
    ranges: tuple[PageRange, ...]

    def resolve(self, source: str, page_count: int) -> list[int]:
        """Return the selected 1-based page numbers of a PDF with ``page_count`` pages, ascending and unique.

        Raises InputError naming the page count when a selected page does not exist.
        """
        selected: set[int] = set()
        for page_range in self.ranges:
            last = page_count if page_range.last is None else page_range.last
            if page_range.first > page_count or last > page_count:
                raise InputError(
                    f"{source}: --pages {self.spec} selects page {max(page_range.first, last)}, "
                    f"but the file has {page_count} page{'s' if page_count != 1 else ''}; "
                    f"use pages within 1-{page_count}"
                )
            selected.update(range(page_range.first, last + 1))
        return sorted(selected)


def parse_page_spec(spec: str) -> PageSelection:
    """Parse ``--pages``: comma-separated pages and ranges, 1-based, such as ``3-10,15`` or ``20-``.

    Raises UsageError naming the invalid part.
    """
    ranges: list[PageRange] = []
    for part in spec.split(","):
        part = part.strip()
        match = _RANGE.match(part)
        if match is None:
            raise UsageError(
                f"--pages {spec!r}: {part!r} is not a page or range; use 1-based pages such as 3-10,15 or 20-"
            )
        first = int(match.group(1))
        last: int | None
        if match.group(2) is None:
            last = first
        elif match.group(3):
            last = int(match.group(3))
        else:
            last = None
        if first < 1:
            raise UsageError(f"--pages {spec!r}: page numbers start at 1, got {part!r}")
        if last is not None and last < first:
            raise UsageError(f"--pages {spec!r}: range {part!r} ends before it starts; write it as {last}-{first}")
        ranges.append(PageRange(first, last))
    return PageSelection(spec=spec, ranges=tuple(ranges))
