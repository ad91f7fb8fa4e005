"""How often `wavefilter ask` states a fact planted in Python's documentation topics.

Builds documents the way `wavefilter demo` does, each with one planted fact.
Every one of the demo's three fact sentences goes in at its depth, once per
seed with a new random value. The documents are written to a temporary
folder and the real command runs on each, once per setting. A reply counts
as correct when the only number in it is the planted value. Prints one line
per setting:

    python benchmarks/planted_facts.py --tokens 1000 --seeds 4 --setting "" --setting "--refresh-every 0"

Each ``--setting`` is a string of extra `ask` flags; the empty string runs the defaults.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from transformers import AutoTokenizer

from wavefilter_cli.config import BUILTIN_DIR
from wavefilter_cli.demo import FACT_TEMPLATES, build_demo_document


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="builtin", help="checkpoint folder or builtin")
    parser.add_argument("--tokens", type=int, default=1000, help="minimum document length in the built-in tokenizer's tokens")
    parser.add_argument("--seeds", type=int, default=4, help="documents per fact sentence (one random value each)")
    parser.add_argument("--setting", action="append", default=None, help="extra ask flags (repeatable)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads of each ask run (OMP_NUM_THREADS)")
    parser.add_argument("--show", action="store_true", help="print every reply")
    args = parser.parse_args()
    settings = args.setting or [""]
    tokenizer = AutoTokenizer.from_pretrained(BUILTIN_DIR)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))

    with tempfile.TemporaryDirectory() as folder:
        cases = []
        for seed in range(args.seeds):
            for index in range(len(FACT_TEMPLATES)):
                built = build_demo_document(tokenizer, min_tokens=args.tokens, seed=seed, planted=(index,))
                path = Path(folder) / f"topics-{seed}-{index}.txt"
                path.write_text(built.text, encoding="utf-8")
                cases.append((path, built.facts[0]))

        for setting in settings:
            correct, started = 0, time.perf_counter()
            for path, fact in cases:
                command = [sys.executable, "-m", "wavefilter_cli", "ask", "--model", args.model, "--context", str(path),
                           fact.question, "--no-stream", *shlex.split(setting)]
                result = subprocess.run(command, capture_output=True, text=True, env=env)
                if result.returncode != 0:
                    raise SystemExit(f"ask failed with status {result.returncode} on {path}: {result.stderr.strip()}")
                reply = result.stdout.strip()
                correct += fact.is_correct(reply)
                if args.show:
                    print(f"  {fact.answer:>6} {fact.is_correct(reply)!s:5} {reply!r}", file=sys.stderr)
            seconds = time.perf_counter() - started
            print(f"setting {setting or '(defaults)'!r}: {correct} of {len(cases)} correct, {seconds:.1f} s")


if __name__ == "__main__":
    main()
