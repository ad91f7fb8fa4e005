"""Measure how well the model copies a fact's value, a finer signal than exact match.

Exact match of a six-digit value stays near zero until nearly every digit is
right, so it hides the progress of a model in training. This probe scores the
value digits of look-up answers on held-out text with the rest of the
answer given (teacher forcing):

- ``one_masked``: each value digit masked on its own, with every other
  answer token visible; the share predicted right. Decoding one token per
  step, left to right, sees this case.
- ``all_masked``: all value digits masked at once; the share right.
- ``copy_mass[L]``: in the one-masked case, the attention probability that
  head 0 of layer L puts on the prompt token the digit copies (the source
  that attention supervision targets). Near 1 means the head finds the
  value; a gap between it and ``one_masked`` is lost after the look-up.

    python -m wavefilter_cli.training.probe --model builtin --tasks niah_single,niah_multikey --length 160
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import torch

from wavefilter_cli.models.attention import sdpa
from wavefilter_cli.training.data import SampleGenerator
from wavefilter_cli.training.haystack import DEFAULT_HAYSTACK_DIR, Haystack
from wavefilter_cli.training.supervision import NO_SOURCE, CopySources


class HeadProbe:
    """Dense attention that keeps head 0's attention row of one query position in chosen layers."""

    def __init__(self, layers: tuple[int, ...], position: int) -> None:
        self.layers = layers
        self.position = position
        self.rows: dict[int, torch.Tensor] = {}

    def attend(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if layer in self.layers:
            query = q[0, 0, self.position]  # (D,)
            keys = k[0, 0]  # (T, D): query head 0 reads key head 0 with or without grouped heads
            self.rows[layer] = (keys @ query / query.shape[-1] ** 0.5).softmax(-1)
        return sdpa(q, k, v)


@torch.no_grad()
def probe(model, tokenizer, generator: SampleGenerator, task: str, length: int, samples: int,
          layers: tuple[int, ...] = (1,), seed: int = 0) -> dict:
    """Score the value digits of ``samples`` look-ups of ``task`` at ``length`` prompt tokens."""
    rng = random.Random(f"{seed}-{task}-{length}")
    sources_of = CopySources(tokenizer)
    mask_id = tokenizer.mask_token_id
    one_right = all_right = digits_seen = 0
    mass = {layer: 0.0 for layer in layers}
    sourced = 0
    for index in range(samples):
        sample = generator.make(task, length, rng, depth=(index + 0.5) / samples)
        ids = sample.prompt_ids + sample.answer_ids
        start = len(sample.prompt_ids)
        tokens = tokenizer.convert_ids_to_tokens(sample.answer_ids)
        digits = [j for j, token in enumerate(tokens) if token.isdigit()]
        sources = sources_of(sample.prompt_ids, sample.answer_ids, {tokenizer.eos_token_id})
        for j in digits:
            noised = torch.tensor([ids])
            noised[0, start + j] = mask_id
            heads = HeadProbe(layers, start + j)
            logits = model(noised, attention=heads).logits[0, start + j]
            one_right += int(logits.argmax()) == ids[start + j]
            if sources[j] != NO_SOURCE:
                sourced += 1
                for layer in layers:
                    mass[layer] += float(heads.rows[layer][sources[j]])
        noised = torch.tensor([ids])
        noised[0, [start + j for j in digits]] = mask_id
        logits = model(noised).logits[0]
        all_right += sum(int(logits[start + j].argmax()) == ids[start + j] for j in digits)
        digits_seen += len(digits)
    seen = max(1, digits_seen)
    return {
        "task": task,
        "length": length,
        "samples": samples,
        "digits": digits_seen,
        "one_masked": round(one_right / seen, 3),
        "all_masked": round(all_right / seen, 3),
        "copy_mass": {str(layer): round(mass[layer] / max(1, sourced), 3) for layer in layers},
    }


def main() -> None:
    from wavefilter_cli.models import load_model, load_tokenizer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="builtin", help="checkpoint folder or builtin")
    parser.add_argument("--haystack", type=Path, default=DEFAULT_HAYSTACK_DIR)
    parser.add_argument("--tasks", default="niah_single,niah_multikey")
    parser.add_argument("--length", type=int, default=160, help="prompt tokens")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--layers", default="1", help="comma-separated layers whose head 0 is a copy head")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model, device="cpu")
    tokenizer = load_tokenizer(model.checkpoint_dir, model.config)
    generator = SampleGenerator(tokenizer, Haystack(args.haystack), split="eval")
    layers = tuple(int(x) for x in args.layers.split(","))
    rows = [probe(model, tokenizer, generator, task, args.length, args.samples, layers) for task in args.tasks.split(",")]
    for row in rows:
        mass = " ".join(f"layer {layer}: {value:.2f}" for layer, value in row["copy_mass"].items())
        print(f"{row['task']:<16} {row['length']:>6}  one masked {row['one_masked']:.2f}  "
              f"all masked {row['all_masked']:.2f}  copy mass {mass}  ({row['digits']} digits)")
    print(json.dumps({"model": args.model, "results": rows}))


if __name__ == "__main__":
    main()
