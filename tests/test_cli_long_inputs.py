"""`ask` and `summarize` on inputs longer than the window, end to end on tiny random models and the built-in model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pdf_writer import build_pdf
from tiny_models import make_tokenizer, save_tiny_dream, save_tiny_llada

from wavefilter_cli.ingest import IngestOptions, load_bytes

QUESTION = "What is the passcode for the north gate?"
WINDOW = 256


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    return make_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def llada_dir(tokenizer_dir, tmp_path_factory) -> Path:
    return save_tiny_llada(tmp_path_factory.mktemp("llada") / "m", tokenizer_dir, window=WINDOW)


@pytest.fixture(scope="module")
def dream_dir(tokenizer_dir, tmp_path_factory) -> Path:
    return save_tiny_dream(tmp_path_factory.mktemp("dream") / "m", tokenizer_dir)


def long_text(paragraphs: int = 24) -> str:
    parts = []
    for number in range(paragraphs):
        parts.append(f"Paragraph {number}. The harbour lamp was lit at dusk. Merchants counted coins by the bridge.")
        if number == paragraphs // 2:
            parts.append("The passcode for the north gate is 4817.")
    return "\n\n".join(parts)


@pytest.fixture
def document(tmp_path) -> Path:
    path = tmp_path / "long.txt"
    path.write_text(long_text())
    return path


def run(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    # One thread: tiny models gain nothing from more, and it keeps the tests fast on a busy machine.
    full_env = {**os.environ, "WAVEFILTER_CACHE": "none", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    full_env.pop("WAVEFILTER_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "wavefilter_cli", *args], capture_output=True, text=True, env=full_env, timeout=300,
        cwd=cwd,
    )


def notice(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("input is ")]
    assert len(lines) == 1, stderr
    return lines[0]


# ---------------------------------------------------------------------------
# Exit codes and bad values
# ---------------------------------------------------------------------------


def test_no_chunk_exits_4(llada_dir, document):
    result = run("ask", QUESTION, "--context", str(document), "-m", str(llada_dir), "--no-chunk", "--max-tokens", "8")
    assert result.returncode == 4
    assert "over the model's 256-token window" in result.stderr
    assert "the prompt is " in result.stderr
    assert "--no-chunk" in result.stderr
    assert result.stdout == ""


def test_no_chunk_from_environment_exits_4(llada_dir, document):
    result = run("ask", QUESTION, "--context", str(document), "-m", str(llada_dir), "--max-tokens", "8",
                 env={"WAVEFILTER_CHUNK": "false"})
    assert result.returncode == 4


def test_overlap_not_below_chunk_size_exits_2(llada_dir, document):
    result = run("ask", QUESTION, "--context", str(document), "-m", str(llada_dir), "--chunk-tokens", "32",
                 "--chunk-overlap", "32")
    assert result.returncode == 2
    assert "--chunk-overlap 32" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_window_too_small_for_question_exits_4(llada_dir, document):
    result = run("ask", QUESTION, "--context", str(document), "-m", str(llada_dir), "--ctx-tokens", "60",
                 "--max-tokens", "8")
    assert result.returncode == 4
    assert "60-token window set by --ctx-tokens" in result.stderr
    assert "raise --ctx-tokens to at least" in result.stderr


def test_chunk_tokens_over_window_exits_4(llada_dir, document):
    result = run("ask", QUESTION, "--context", str(document), "-m", str(llada_dir), "--chunk-tokens", "5000",
                 "--max-tokens", "8")
    assert result.returncode == 4
    assert "--chunk-tokens 5000 does not fit" in result.stderr


def test_unknown_strategy_exits_2(llada_dir, document):
    result = run("ask", QUESTION, "--context", str(document), "-m", str(llada_dir), "--strategy", "sliding")
    assert result.returncode == 2
    assert "generate.strategy" in result.stderr


# ---------------------------------------------------------------------------
# The filter strategy
# ---------------------------------------------------------------------------


def test_filter_strategy_fits_window_and_says_so(llada_dir, document):
    result = run("ask", QUESTION, "--context", str(document), "-m", str(llada_dir), "--max-tokens", "8",
                 "--chunk-overlap", "16", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    chunking = record["chunking"]
    assert chunking["strategy"] == "filter"
    assert chunking["chunks"] > 1
    assert 0 < chunking["kept_document_tokens"] < chunking["document_tokens"]
    assert record["tokens_in"] + 8 <= WINDOW
    line = notice(result.stderr)
    assert "strategy filter" in line
    assert f"{chunking['chunks']} chunks" in line
    assert f"kept {chunking['kept_document_tokens']:,} of {chunking['document_tokens']:,} document tokens" in line


@pytest.mark.parametrize("cache, filter_name", [("prefix", "snapkv"), ("dual", "streaming"), ("none", "wavefilter-paper")])
def test_filter_strategy_under_hosts_and_filters(llada_dir, document, cache, filter_name):
    result = run("ask", QUESTION, "--context", str(document), "-m", str(llada_dir), "--max-tokens", "8",
                 "--cache", cache, "--filter", filter_name, "--positions", "original", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["chunking"]["scoring_filter"] == filter_name
    assert record["chunking"]["positions"] == "original"


def test_filter_strategy_keep_tokens_cap(llada_dir, document):
    env = {"WAVEFILTER_KEEP_UNIT": "sentences", "WAVEFILTER_KEEP_TOKENS": "40"}
    result = run("ask", QUESTION, "--context", str(document), "-m", str(llada_dir), "--max-tokens", "8", "--json",
                 env=env)
    assert result.returncode == 0, result.stderr
    chunking = json.loads(result.stdout)["chunking"]
    assert chunking["keep_unit"] == "sentences"
    assert 0 < chunking["kept_document_tokens"] <= 40, result.stderr
    assert "as whole sentences by wavefilter scores" in notice(result.stderr)


@pytest.mark.parametrize("value, message", [("abc", "--keep-tokens 'abc' is invalid"), ("8", "generate.keep_tokens=8 is invalid")])
def test_invalid_keep_tokens_exits_2(llada_dir, document, value, message):
    result = run("ask", QUESTION, "--context", str(document), "-m", str(llada_dir), "--keep-tokens", value)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_filter_strategy_on_dream(dream_dir, document):
    result = run("ask", QUESTION, "--context", str(document), "-m", str(dream_dir), "--max-tokens", "8",
                 "--ctx-tokens", "300", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["chunking"]["window"] == 300
    assert record["tokens_in"] + 8 <= 300


def test_input_within_window_is_not_chunked(llada_dir, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("The passcode for the north gate is 4817.")
    result = run("ask", QUESTION, "--context", str(short), "-m", str(llada_dir), "--max-tokens", "8", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["chunking"] is None
    assert "input is " not in result.stderr


# ---------------------------------------------------------------------------
# The map-reduce strategy
# ---------------------------------------------------------------------------


def stages_seen(stderr: str) -> list[str]:
    stages = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            stage = json.loads(line)["stage"]
            if not stages or stages[-1] != stage:
                stages.append(stage)
    return stages


def test_map_reduce_stages_and_calls(llada_dir, document):
    args = ("summarize", str(document), "-m", str(llada_dir), "--max-tokens", "8", "--chunk-overlap", "16")
    result = run(*args, "--json", "--progress", "jsonl")
    assert result.returncode == 0, result.stderr
    chunking = json.loads(result.stdout)["chunking"]
    assert chunking["strategy"] == "map-reduce"
    assert chunking["calls"] >= chunking["chunks"] + 1
    assert chunking["stages"] >= 2
    stages = stages_seen(result.stderr)
    assert stages.index("map") < stages.index("final")
    assert stages[-1] == "final"
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    map_records = [record for record in records if record["stage"] == "map"]
    assert {r["chunks"] for r in map_records} == {chunking["chunks"]}
    assert max(r["chunk"] for r in map_records) == chunking["chunks"]
    assert "strategy map-reduce" in notice(result.stderr)


def test_map_reduce_prints_only_final_answer(llada_dir, document):
    args = ("summarize", str(document), "-m", str(llada_dir), "--max-tokens", "8", "--chunk-overlap", "16")
    plain = run(*args)
    as_json = run(*args, "--json")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == json.loads(as_json.stdout)["answer"] + "\n"


def test_ask_with_map_reduce_on_dream(dream_dir, document):
    result = run("ask", QUESTION, "--context", str(document), "-m", str(dream_dir), "--max-tokens", "8",
                 "--ctx-tokens", "400", "--strategy", "map-reduce", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["chunking"]["strategy"] == "map-reduce"
    assert "each chunk is answered on its own" in notice(result.stderr)


# ---------------------------------------------------------------------------
# Citations
# ---------------------------------------------------------------------------


def write_pdf(path: Path, pages: int = 5) -> bytes:
    content = []
    for page in range(1, pages + 1):
        lines = [f"Page {page} of the report, about the harbour."]
        lines += [f"Line {line}: merchants counted coins by the bridge on page {page}." for line in range(6)]
        content.append(lines)
    data = build_pdf(content)
    path.write_bytes(data)
    return data


def check_citations(citations, documents):
    assert 0 < len(citations) <= 5
    for citation in citations:
        assert set(citation) == {"file", "page", "start", "end", "text"}
        document = documents[citation["file"]]
        assert document.text[citation["start"] : citation["end"]] == citation["text"]
        if citation["page"] is None:
            assert document.pages is None
            continue
        span = next(s for s in document.spans if s.page == citation["page"])
        assert span.start <= citation["start"] < citation["end"] <= span.end


@pytest.mark.parametrize("strategy", ["filter", "map-reduce"])
def test_citations_point_inside_file_and_page(llada_dir, tmp_path, strategy):
    pdf = tmp_path / "report.pdf"
    text = tmp_path / "notes.txt"
    data = write_pdf(pdf)
    text.write_text(long_text(8))
    documents = {str(pdf): load_bytes(data, str(pdf), IngestOptions()),
                 str(text): load_bytes(text.read_bytes(), str(text), IngestOptions())}
    result = run("ask", QUESTION, "--context", str(pdf), "--context", str(text), "-m", str(llada_dir),
                 "--max-tokens", "8", "--strategy", strategy, "--json", "--cite")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["chunking"]["strategy"] == strategy
    check_citations(record["citations"], documents)
    assert "citations:" in result.stderr
    assert "[1] " in result.stderr


def test_citations_without_chunking(llada_dir, tmp_path):
    pdf = tmp_path / "small.pdf"
    data = write_pdf(pdf, pages=2)
    result = run("ask", QUESTION, "--context", str(pdf), "-m", str(llada_dir), "--max-tokens", "8",
                 "--ctx-tokens", "4096", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["chunking"] is None
    check_citations(record["citations"], {str(pdf): load_bytes(data, str(pdf), IngestOptions())})


# ---------------------------------------------------------------------------
# The built-in model
# ---------------------------------------------------------------------------


def write_topics_document(folder: Path, planted: tuple[int, ...]):
    """Write about 20K built-in tokens of Python's documentation topics with the ``planted`` demo facts to ``folder``."""
    from transformers import AutoTokenizer

    from wavefilter_cli.demo import build_demo_document

    tokenizer = AutoTokenizer.from_pretrained(Path(__file__).resolve().parent.parent / "wavefilter_cli" / "builtin_model")
    built = build_demo_document(tokenizer, min_tokens=20_000, planted=planted)
    path = folder / "topics.txt"
    path.write_text(built.text)
    return path, built.facts


@pytest.fixture(scope="module")
def builtin_document(tmp_path_factory) -> Path:
    """The topics document with facts planted at 20%, 50% and 80% depth."""
    path, _ = write_topics_document(tmp_path_factory.mktemp("builtin"), planted=(0, 1, 2))
    return path


@pytest.fixture(scope="module")
def single_fact_document(tmp_path_factory):
    """The topics document with one fact planted at 50% depth, and that fact."""
    path, facts = write_topics_document(tmp_path_factory.mktemp("single"), planted=(1,))
    return path, facts[0]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["filter", "retrieve"])
def test_builtin_ask_over_20k_tokens(single_fact_document, strategy):
    # The planted fact at 50% depth lies past the 4,096-token window.
    path, fact = single_fact_document
    # A relative path keeps the document's header line, and so the prompt, the same on every run.
    result = run("ask", fact.question, "--context", path.name, "--strategy", strategy,
                 "--max-tokens", "24", "--json", cwd=path.parent)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    if strategy == "retrieve":
        assert fact.is_correct(record["answer"]), record["answer"]
    # NOTE: under the filter strategy the built-in model keeps the fact sentence but copies its value
    # wrongly from the merged prompt (docs/benchmarks.md, "Long inputs"), so only that answer goes unchecked.
    assert record["chunking"]["strategy"] == strategy
    assert record["chunking"]["document_tokens"] > 19_000
    assert record["chunking"]["chunks"] >= 5
    assert record["tokens_in"] + 24 <= 4096
    assert all(set(c) == {"file", "page", "start", "end", "text"} for c in record["citations"])
    assert f"strategy {strategy}" in notice(result.stderr)


@pytest.mark.slow
def test_builtin_ask_with_map_reduce(builtin_document, tmp_path):
    shorter = tmp_path / "topics.txt"
    shorter.write_text(builtin_document.read_text()[:12_000])
    result = run("ask", "What is the passcode for the north gate?", "--context", str(shorter), "--max-tokens", "8",
                 "--sampler", "threshold", "--ctx-tokens", "1024", "--strategy", "map-reduce", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["chunking"]["strategy"] == "map-reduce"
    assert "strategy map-reduce" in notice(result.stderr)


def test_builtin_summarize_still_exits_5(builtin_document):
    result = run("summarize", str(builtin_document))
    assert result.returncode == 5
    assert "input is " not in result.stderr


@pytest.mark.slow
def test_demo_chunks_long_document():
    result = run("demo", "--tokens", "5000", "--methods", "prefix,prefix+wavefilter")
    assert result.returncode == 0, result.stderr
    assert "over the model's 4096-token window: strategy filter" in result.stderr
    assert result.stdout.count("Q: ") == 3
    table = result.stdout.split("method", 1)[1].splitlines()
    assert [line.split()[0] for line in table[1:] if line.strip()] == ["prefix", "prefix+wavefilter"]
