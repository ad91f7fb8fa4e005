"""``--include`` and ``--exclude`` patterns, matched against paths relative to the input directory."""

from __future__ import annotations

import re
from dataclasses import dataclass

from wavefilter_cli.errors import UsageError


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Compile a glob to a regex over POSIX-style relative paths.

    ``*`` matches within one path segment, ``?`` one character other than
    ``/``, ``[abc]`` and ``[!abc]`` a character class, ``**`` any run of
    characters including ``/``, and ``**/`` zero or more whole directories.
    Matching is case-sensitive.
    """
    out: list[str] = []
    index = 0
    while index < len(pattern):
        ch = pattern[index]
        if pattern.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
        elif pattern.startswith("**", index):
            out.append(".*")
            index += 2
        elif ch == "*":
            out.append("[^/]*")
            index += 1
        elif ch == "?":
            out.append("[^/]")
            index += 1
        elif ch == "[":
            close = pattern.find("]", index + 2)
            if close == -1:
                out.append(re.escape(ch))
                index += 1
                continue
            body = pattern[index + 1 : close]
            negate = body.startswith("!")
            if negate:
                body = body[1:]
            # Escape everything but "-" so ranges work and "[", "^" or "&" stay literal.
            escaped = "".join(c if c == "-" else re.escape(c) for c in body)
            out.append(f"[{'^' if negate else ''}{escaped}]")
            index = close + 1
        else:
            out.append(re.escape(ch))
            index += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


@dataclass(frozen=True)
class _Glob:
    text: str
    regex: re.Pattern[str]
    name_only: bool

    def matches(self, relative_path: str) -> bool:
        target = relative_path.rsplit("/", 1)[-1] if self.name_only else relative_path
        return self.regex.match(target) is not None


def _compile(option: str, pattern: str) -> _Glob:
    cleaned = pattern.strip()
    while cleaned.startswith("./"):
        cleaned = cleaned[2:]
    cleaned = cleaned.rstrip("/")
    if not cleaned:
        raise UsageError(f"{option} {pattern!r} is empty; give a glob such as '*.md' or 'drafts/**'")
    # A pattern without "/" matches the file or folder name at any depth, as in .gitignore.
    return _Glob(text=pattern, regex=glob_to_regex(cleaned), name_only="/" not in cleaned)


@dataclass(frozen=True)
class PathFilter:
    """Decides which files a directory walk keeps.

    A file is kept when it matches some ``--include`` pattern (or none were
    given) and no ``--exclude`` pattern. A folder that matches an
    ``--exclude`` pattern is not entered at all.
    """

    include: tuple[_Glob, ...] = ()
    exclude: tuple[_Glob, ...] = ()

    @classmethod
    def from_patterns(cls, include: list[str] | tuple[str, ...], exclude: list[str] | tuple[str, ...]) -> "PathFilter":
        return cls(
            include=tuple(_compile("--include", pattern) for pattern in include),
            exclude=tuple(_compile("--exclude", pattern) for pattern in exclude),
        )

    def keeps_file(self, relative_path: str) -> bool:
        if any(glob.matches(relative_path) for glob in self.exclude):
            return False
        return not self.include or any(glob.matches(relative_path) for glob in self.include)

    def enters_directory(self, relative_path: str) -> bool:
        return not any(glob.matches(relative_path) for glob in self.exclude)
