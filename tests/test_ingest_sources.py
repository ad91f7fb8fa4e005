"""Tests for directory walking, glob filters, stdin and per-file skips."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

import wavefilter_cli.ingest.load as load_module
import wavefilter_cli.ingest.sources as sources_module
from pdf_writer import IMAGE_PAGE, build_pdf
from wavefilter_cli.errors import InputError, UsageError
from wavefilter_cli.ingest import Document, IngestOptions, PathFilter, Skipped, check_inputs, iter_documents
from wavefilter_cli.ingest.globs import glob_to_regex
from wavefilter_cli.ingest.sources import InputFile, expand_inputs


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def _names(results: list[InputFile | Skipped], root: Path) -> list[str]:
    return [os.path.relpath(item.source, root) for item in results if isinstance(item, InputFile)]


def _run(inputs: list[str], options: IngestOptions | None = None, stdin: bytes = b"") -> list[Document | Skipped]:
    return list(iter_documents(inputs, options or IngestOptions(), io.BytesIO(stdin)))


def _documents(results: list[Document | Skipped]) -> list[Document]:
    return [item for item in results if isinstance(item, Document)]


def _skips(results: list[Document | Skipped]) -> list[str]:
    return [item.message for item in results if isinstance(item, Skipped)]


def test_walk_sorted_depth_first(tmp_path: Path) -> None:
    _tree(tmp_path, {"z.md": b"z", "b.md": b"b", "sub/c.md": b"c", "sub/a.md": b"a", "a.txt": b"a", "sub2/x.md": b"x"})
    results = list(expand_inputs([str(tmp_path)], PathFilter()))
    assert _names(results, tmp_path) == ["a.txt", "b.md", "sub/a.md", "sub/c.md", "sub2/x.md", "z.md"]


def test_walk_order_ignores_listing_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tree(tmp_path, {"a.md": b"a", "b/c.md": b"c", "d.md": b"d"})
    real_listdir = os.listdir
    monkeypatch.setattr(sources_module.os, "listdir", lambda path: sorted(real_listdir(path), reverse=True))
    results = list(expand_inputs([str(tmp_path)], PathFilter()))
    assert _names(results, tmp_path) == ["a.md", "b/c.md", "d.md"]


def test_include_matches_name_at_any_depth(tmp_path: Path) -> None:
    _tree(tmp_path, {"a.md": b"a", "b.txt": b"b", "sub/c.md": b"c"})
    results = list(expand_inputs([str(tmp_path)], PathFilter.from_patterns(["*.md"], [])))
    assert _names(results, tmp_path) == ["a.md", "sub/c.md"]


def test_include_with_slash_matches_relative_path(tmp_path: Path) -> None:
    _tree(tmp_path, {"a.md": b"a", "sub/c.md": b"c", "sub/deep/d.md": b"d"})
    results = list(expand_inputs([str(tmp_path)], PathFilter.from_patterns(["sub/*.md"], [])))
    assert _names(results, tmp_path) == ["sub/c.md"]


def test_exclude_prunes_directory(tmp_path: Path) -> None:
    _tree(tmp_path, {"a.md": b"a", "drafts/b.md": b"b", "keep/drafts.md": b"c"})
    results = list(expand_inputs([str(tmp_path)], PathFilter.from_patterns([], ["drafts"])))
    assert _names(results, tmp_path) == ["a.md", "keep/drafts.md"]


def test_exclude_double_star(tmp_path: Path) -> None:
    _tree(tmp_path, {"a.md": b"a", "drafts/b.md": b"b", "drafts/x/c.md": b"c"})
    results = list(expand_inputs([str(tmp_path)], PathFilter.from_patterns([], ["drafts/**"])))
    assert _names(results, tmp_path) == ["a.md"]


def test_exclude_wins_over_include(tmp_path: Path) -> None:
    _tree(tmp_path, {"a.md": b"a", "b.md": b"b"})
    results = list(expand_inputs([str(tmp_path)], PathFilter.from_patterns(["*.md"], ["b.*"])))
    assert _names(results, tmp_path) == ["a.md"]


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("*.md", "a.md", True),
        ("*.md", "sub/a.md", False),
        ("**/*.md", "a.md", True),
        ("**/*.md", "x/y/a.md", True),
        ("docs/**", "docs/a/b.txt", True),
        ("a?.txt", "ab.txt", True),
        ("a?.txt", "a/.txt", False),
        ("[!x]*.md", "y.md", True),
        ("[!x]*.md", "x.md", False),
        ("[a-c].md", "b.md", True),
        ("[[]x].md", "[x].md", True),
    ],
)
def test_glob_to_regex(pattern: str, path: str, expected: bool) -> None:
    assert (glob_to_regex(pattern).match(path) is not None) is expected


def test_empty_glob_is_usage_error() -> None:
    with pytest.raises(UsageError):
        PathFilter.from_patterns([" "], [])


def test_hidden_entries_skipped_once(tmp_path: Path) -> None:
    _tree(tmp_path, {"a.md": b"a", ".secret.md": b"s", ".git/config": b"c", "sub/.cache/x.md": b"x"})
    results = _run([str(tmp_path)])
    assert [os.path.basename(document.source) for document in _documents(results)] == ["a.md"]
    skips = _skips(results)
    assert len(skips) == 1
    assert "3 hidden files or folders" in skips[0]
    assert ".git" in skips[0]
    assert "sub/.cache" in skips[0]


def test_hidden_file_named_explicitly_is_read(tmp_path: Path) -> None:
    _tree(tmp_path, {".notes.md": b"hidden but named"})
    results = _run([str(tmp_path / ".notes.md")])
    assert _documents(results)[0].text == "hidden but named"


def test_binary_file_skipped_in_directory(tmp_path: Path) -> None:
    _tree(tmp_path, {"a.md": b"text", "image.dat": b"\x89PNG\x00\x00\x01"})
    results = _run([str(tmp_path)])
    assert len(_documents(results)) == 1
    skips = _skips(results)
    assert len(skips) == 1
    assert "image.dat: skipped, binary file" in skips[0]


def test_oversize_file_skipped_in_directory(tmp_path: Path) -> None:
    _tree(tmp_path, {"small.md": b"small", "big.md": b"x" * 5000})
    results = _run([str(tmp_path)], IngestOptions(max_file_mb=0.002))
    assert [os.path.basename(document.source) for document in _documents(results)] == ["small.md"]
    skips = _skips(results)
    assert len(skips) == 1
    assert "big.md: skipped" in skips[0]
    assert "--max-file-mb" in skips[0]


def test_oversize_explicit_file_is_error(tmp_path: Path) -> None:
    _tree(tmp_path, {"big.md": b"x" * 5000})
    with pytest.raises(InputError) as caught:
        _run([str(tmp_path / "big.md")], IngestOptions(max_file_mb=0.002))
    assert "--max-file-mb" in str(caught.value)


def test_oversize_stdin_is_error() -> None:
    with pytest.raises(InputError):
        _run(["-"], IngestOptions(max_file_mb=0.001), stdin=b"x" * 2000)


def test_bad_pdf_in_directory_skipped(tmp_path: Path) -> None:
    _tree(tmp_path, {"a.md": b"fine", "broken.pdf": build_pdf([["text"]])[:200], "fake.pdf": b"not a pdf"})
    results = _run([str(tmp_path)])
    assert len(_documents(results)) == 1
    skips = _skips(results)
    assert len(skips) == 2
    assert "broken.pdf: skipped, malformed or truncated PDF" in skips[0]
    assert "fake.pdf: skipped, not a PDF" in skips[1]


def test_all_skipped_yields_no_documents(tmp_path: Path) -> None:
    _tree(tmp_path, {"scan.pdf": build_pdf([IMAGE_PAGE]), "blob.bin": b"\x00\x01"})
    results = _run([str(tmp_path)])
    assert _documents(results) == []
    assert len(_skips(results)) == 2


def test_symlink_loop_survived(tmp_path: Path) -> None:
    _tree(tmp_path, {"a.md": b"a", "sub/b.md": b"b"})
    (tmp_path / "sub" / "loop").symlink_to(tmp_path, target_is_directory=True)
    results = _run([str(tmp_path)])
    assert [os.path.relpath(document.source, tmp_path) for document in _documents(results)] == ["a.md", "sub/b.md"]
    skips = _skips(results)
    assert len(skips) == 1
    assert "sub/loop: skipped" in skips[0]


def test_symlinked_file_followed(tmp_path: Path) -> None:
    _tree(tmp_path, {"real/a.md": b"target text"})
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "link.md").symlink_to(tmp_path / "real" / "a.md")
    results = _run([str(tmp_path / "docs")])
    assert _documents(results)[0].text == "target text"


def test_broken_symlink_skipped(tmp_path: Path) -> None:
    _tree(tmp_path, {"a.md": b"a"})
    (tmp_path / "dangling.md").symlink_to(tmp_path / "missing.md")
    results = _run([str(tmp_path)])
    assert len(_documents(results)) == 1
    assert "dangling.md: skipped, broken symbolic link" in _skips(results)[0]


def test_missing_input_names_path(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.pdf")
    with pytest.raises(InputError) as caught:
        check_inputs([missing])
    assert missing in str(caught.value)


def test_stdin_twice_is_usage_error() -> None:
    with pytest.raises(UsageError):
        check_inputs(["-", "-"])


def test_stdin_pdf_detected_by_header() -> None:
    results = _run(["-"], stdin=build_pdf([["from a pipe"]]))
    document = _documents(results)[0]
    assert document.source == "stdin"
    assert document.pages == 1
    assert document.text == "from a pipe"


def test_stdin_text() -> None:
    document = _documents(_run(["-"], stdin=b"piped\r\ntext"))[0]
    assert document.pages is None
    assert document.text == "piped\ntext"


def test_inputs_never_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tree(tmp_path, {"r.pdf": build_pdf([["pdf text"]]), "n.md": b"note\r\n", "w.txt": b"caf\xe9"})
    before = {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in tmp_path.iterdir()}
    modes: list[str] = []
    real_open = open

    def recording_open(file, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        modes.append(mode)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(load_module, "open", recording_open, raising=False)
    results = _run([str(tmp_path)])
    assert len(_documents(results)) == 3
    assert modes == ["rb", "rb", "rb"]
    after = {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in tmp_path.iterdir()}
    assert after == before
