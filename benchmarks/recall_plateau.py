"""Multi-query associative recall on random tokens, with and without attention supervision.

A small LLaDA-architecture model reads ``pairs`` key-value pairs scattered
through filler tokens, then every key again with its value masked, and
predicts the masked values. Without help it sits at chance among the values
in the sequence (loss near ln(pairs)) for thousands of steps. With the
supervision of ``wavefilter_cli.training.supervision`` (a previous-token
head in layer 0, a head in layer 1 from each masked value to the value it
copies) it leaves the plateau within about a thousand steps. This is the
experiment behind the built-in model's training recipe:

    python benchmarks/recall_plateau.py --supervision 0.0 --steps 3000
    python benchmarks/recall_plateau.py --supervision 0.1 --steps 1000

Prints one line per 100 steps: task loss, supervision loss, accuracy on the
batch's masked values and seconds so far.
"""

from __future__ import annotations

import argparse
import random
import time

import torch
from torch.nn import functional as F

from wavefilter_cli.models.llada import LLaDAConfig, LLaDAModelLM
from wavefilter_cli.training.supervision import SupervisedAttention

VOCAB = 512
MASK, QUERY = 1, 2
KEYS = list(range(10, 138))
VALUES = list(range(200, 328))
FILLER = list(range(400, 512))


def draw(rng: random.Random, pairs: int, length: int) -> tuple[list[int], list[int]]:
    """Draw one sequence (a document of ``length`` tokens, a query marker, every key with its value) and each query's value position."""
    keys = rng.sample(KEYS, pairs)
    values = [rng.choice(VALUES) for _ in keys]
    filler = [rng.choice(FILLER) for _ in range(length - 2 * pairs)]
    slots = sorted(rng.choices(range(len(filler) + 1), k=pairs))
    document, value_at, last = [], [], 0
    for slot, key, value in zip(slots, keys, values):
        document += filler[last:slot] + [key]
        value_at.append(len(document))
        document.append(value)
        last = slot
    document += filler[last:]
    queries, targets = [], []
    for index in rng.sample(range(pairs), pairs):
        queries += [keys[index], values[index]]
        targets.append(value_at[index])
    return document + [QUERY] + queries, targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--supervision", type=float, default=0.1, help="weight of the attention supervision loss (0 = off)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--length", type=int, default=48, help="document tokens")
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(1)

    config = LLaDAConfig(
        d_model=args.width, n_layers=args.layers, n_heads=4, n_kv_heads=4, mlp_hidden_size=2 * args.width,
        vocab_size=VOCAB, embedding_size=VOCAB, rope_theta=10000.0, max_sequence_length=256,
        mask_token_id=MASK, eos_token_id=0, pad_token_id=0,
    )
    torch.manual_seed(0)
    model = LLaDAModelLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.01)
    rng = random.Random(0)
    started = time.time()
    for step in range(1, args.steps + 1):
        rows = [draw(rng, args.pairs, args.length) for _ in range(args.batch)]
        tokens = torch.tensor([row[0] for row in rows])
        targets = torch.tensor([row[1] for row in rows])
        total = tokens.shape[1]
        answers = torch.arange(total - 2 * args.pairs + 1, total, 2)[None].expand(args.batch, -1)  # (B, pairs)
        labels = tokens.gather(1, answers)
        noised = tokens.scatter(1, answers, MASK)
        # Layer 0 head 0 looks one token back from every position after the first.
        previous = torch.arange(1, total)[None].expand(args.batch, -1)
        context = SupervisedAttention(answers, targets, previous, previous_heads=1, copy_layer=1, copy_heads=1)
        logits = model(noised, attention=context, logits_index=answers).logits
        loss = F.cross_entropy(logits.transpose(1, 2), labels)
        objective = loss + args.supervision * context.loss if args.supervision > 0 else loss
        optimizer.zero_grad()
        objective.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % 100 == 0:
            accuracy = (logits.argmax(-1) == labels).float().mean().item()
            print(f"step {step} loss {loss.item():.3f} supervision {float(context.loss):.3f} "
                  f"accuracy {accuracy:.2f} {time.time() - started:.0f}s", flush=True)


if __name__ == "__main__":
    main()
