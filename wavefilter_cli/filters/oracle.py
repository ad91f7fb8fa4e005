"""``oracle``: exact top-k by dense attention mass, the recall ceiling at a given budget.

Scores each context key by the attention probability it receives from the
observation queries, summed over the queries and the query heads of its KV
group, with the softmax taken over every key of the forward. It needs the
host's dense probabilities, one extra attention pass over the observation
rows, so it saves no time; use it as a control.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from wavefilter_cli.filters.base import FilterInput, KeyFilter, context_attention, grouped_probs


@dataclass
class Oracle(KeyFilter):
    """Exact attention-mass top-k per KV head."""

    name = "oracle"
    needs_probs = True

    def score(self, inputs: FilterInput) -> Tensor:
        if inputs.probs is None:
            # A host without dense probabilities: the softmax over context keys ranks the same
            # keys when answer keys take a similar share for every query.
            grouped = context_attention(inputs)
        else:
            grouped = grouped_probs(inputs.probs.float(), inputs.keys.shape[1])
        return grouped.sum(dim=2)
