"""Map-reduce over chunks: answer or summarise each chunk, then combine the outputs until one call remains.

Stage 1 (map) runs one call per chunk. While the outputs do not fit one
prompt, a reduce stage packs consecutive outputs into as few prompts as fit
and runs one call per pack. The final call takes every remaining output and
is the only one whose text reaches the user. A single chunk is answered by
one final call. The model calls are made by a callback, so this module
holds only the control flow.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Sequence

from wavefilter_cli.longcontext.citations import Citation

logger = logging.getLogger(__name__)


@dataclass
class Part:
    """One input of a call: a chunk of a source document, or the output of an earlier call.

    ``first`` and ``last`` are the 1-based numbers of the chunks it covers;
    ``citations`` are the weighted source spans it rests on.
    """

    name: str
    text: str
    first: int
    last: int
    citations: list[Citation] = field(default_factory=list)


@dataclass(frozen=True)
class StageCall:
    """A call's place in the run: ``stage`` (1 is the map stage), and ``index`` of ``count`` calls in it."""

    stage: int
    index: int
    count: int
    final: bool

    @property
    def name(self) -> str:
        if self.final:
            return "final"
        return "map" if self.stage == 1 else "reduce"


@dataclass(frozen=True)
class CallOutput:
    """A call's generated text and the weighted source spans it attended to."""

    text: str
    citations: list[Citation] = field(default_factory=list)


@dataclass
class MapReduceResult:
    """The final output and how many stages and calls it took."""

    output: CallOutput
    stages: int
    calls: int


#: Runs one model call over its parts; the final call streams its text.
Call = Callable[[Sequence[Part], StageCall], CallOutput]
#: Prompt tokens a part takes (header line and text).
Measure = Callable[[Part], int]


def pack(parts: Sequence[Part], measure: Measure, room: int) -> list[list[Part]]:
    """Group consecutive ``parts`` greedily so that each group's measured tokens fit ``room``.

    A part that alone exceeds ``room`` gets a group of its own.
    """
    groups: list[list[Part]] = []
    used = 0
    for part in parts:
        cost = measure(part)
        if groups and used + cost <= room:
            groups[-1].append(part)
            used += cost
        else:
            groups.append([part])
            used = cost
    return groups


def map_reduce(chunks: Sequence[Part], call: Call, measure: Measure, room: int) -> MapReduceResult:
    """Run the stages over ``chunks``; see the module docstring.

    ``room`` is the number of prompt tokens the parts of one call may take.
    Raises ValueError when a reduce stage cannot pack two outputs into one
    prompt, because the outputs would then never fit one call.
    """
    if len(chunks) == 1:
        return MapReduceResult(call(list(chunks), StageCall(1, 1, 1, final=True)), stages=1, calls=1)

    calls = 0
    parts = list(chunks)
    stage = 1
    groups = [[part] for part in parts]
    while True:
        outputs = []
        for index, group in enumerate(groups, start=1):
            output = call(group, StageCall(stage, index, len(groups), final=False))
            calls += 1
            if output.text.strip():
                outputs.append(Part(_name(group), output.text, group[0].first, group[-1].last, output.citations))
            else:
                logger.info("stage %d call %d/%d gave an empty output; it is left out", stage, index, len(groups))
        stage += 1
        if sum(measure(part) for part in outputs) <= room:
            final = call(outputs, StageCall(stage, 1, 1, final=True))
            return MapReduceResult(final, stages=stage, calls=calls + 1)
        groups = pack(outputs, measure, room)
        if len(groups) >= len(outputs):
            raise ValueError(
                f"no two outputs of stage {stage - 1} fit one prompt of {room} tokens, so they cannot be combined"
            )


def _name(group: Sequence[Part]) -> str:
    """Name the output of a call over ``group`` for the next stage's header."""
    if len(group) == 1:
        return group[0].name
    return f"parts {group[0].first}-{group[-1].last}"
