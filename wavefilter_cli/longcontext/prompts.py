"""Prompts whose document tokens are mapped back to characters of the source documents.

``encode_mapped`` builds the usual prompt (``prompt.chat_messages``, the
chat template, ``encode_prompt``'s ids) and records, for every token that
lies inside a document's text, which document it came from and its
character range there. ``PromptFrame`` contains the token ids around the
document texts (instruction, headers, question, template), so a prompt can
be assembled from kept document tokens without tokenising them again.

Shapes: T prompt tokens. Character offsets index ``Document.text``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from wavefilter_cli.chunking import tokenize_document
from wavefilter_cli.errors import ModelError
from wavefilter_cli.prompt import PART_SEPARATOR, PromptDocument, chat_messages, document_block, document_header, render_prompt

# Private-use characters stand in for a document's name and text when the
# frame is rendered; no chat template or normalised input contains them.
_NAME_PLACEHOLDER = "\ue000"
_TEXT_PLACEHOLDER = "\ue001"


@dataclass(frozen=True)
class SourceText:
    """A piece of a source document placed in a prompt.

    ``document`` indexes the caller's document list, ``name`` is the header
    name, and ``offset`` is the character offset of ``text`` in that
    document's text.
    """

    document: int
    name: str
    text: str
    offset: int = 0


@dataclass
class MappedPrompt:
    """Prompt token ids with, per token, its source document and character range.

    ``document`` (T,) is -1 for tokens outside any document text, such as
    the instruction, headers, question and template. ``start`` and ``end``
    (T,) are character offsets into that document's text, and 0 where
    ``document`` is -1.
    """

    ids: list[int]
    document: np.ndarray
    start: np.ndarray
    end: np.ndarray

    @property
    def document_rows(self) -> np.ndarray:
        """Indices of the tokens inside document text, ascending."""
        return np.flatnonzero(self.document >= 0)

    def __len__(self) -> int:
        return len(self.ids)


def encode_mapped(
    tokenizer,
    sources: Sequence[SourceText],
    question: str | None,
    instruction: str,
    system: str | None = None,
) -> MappedPrompt:
    """Encode the prompt of ``sources`` (in order) and map its document tokens to characters.

    The ids equal ``encode_prompt(tokenizer, chat_messages(...))``. A token
    counts as document text only when it lies wholly inside one source's
    stripped text, so a token that merges a header's newline with the first
    word stays outside. Raises ModelError when the chat template changes the
    document text so that it cannot be found in the rendered prompt.
    """
    messages = chat_messages([PromptDocument(s.name, s.text) for s in sources], question, instruction, system)
    rendered = render_prompt(tokenizer, messages)
    tokens = tokenize_document(tokenizer, rendered)
    ids, offsets = tokens.ids.tolist(), tokens.offsets
    document = np.full(len(ids), -1, dtype=np.int64)
    start = np.zeros(len(ids), dtype=np.int64)
    end = np.zeros(len(ids), dtype=np.int64)
    cursor = 0
    for source in sources:
        block = document_block(PromptDocument(source.name, source.text))
        at = rendered.find(block, cursor)
        if at < 0:
            raise ModelError(
                f"the chat template rewrites the text of {source.name}, so its tokens cannot be traced back to the "
                "document; pass --no-chunk and keep the input within the window"
            )
        region_start = at + len(document_header(source.name))
        region_end = at + len(block)
        # document_block strips the text, so the region starts after the leading whitespace.
        first_char = source.offset + len(source.text) - len(source.text.lstrip())
        inside = (offsets[:, 0] >= region_start) & (offsets[:, 1] <= region_end) & (offsets[:, 1] > offsets[:, 0])
        document[inside] = source.document
        start[inside] = offsets[inside, 0] - region_start + first_char
        end[inside] = offsets[inside, 1] - region_start + first_char
        cursor = region_end
    return MappedPrompt(ids, document, start, end)


def plain_prompt(ids: Sequence[int]) -> MappedPrompt:
    """Wrap ``ids`` in a MappedPrompt without a character mapping, every token outside the documents."""
    count = len(ids)
    return MappedPrompt(list(ids), np.full(count, -1, dtype=np.int64), np.zeros(count, np.int64), np.zeros(count, np.int64))


def token_ids(tokenizer, text: str) -> list[int]:
    """Tokenise ``text``. Special tokens written out in it (``<|eot_id|>``) become their ids."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


@dataclass
class PromptFrame:
    """Token ids of a prompt around its document texts.

    A prompt over documents d1, d2, … is ``prefix + headers[d1] + text(d1) +
    joined_headers[d2] + text(d2) + … + suffix``. ``prefix`` ends after the
    instruction, ``headers[d]`` is the header line of document d and
    ``joined_headers[d]`` the separator plus that line. ``suffix`` contains the
    question and the chat template's closing tokens.
    """

    prefix: list[int]
    suffix: list[int]
    headers: list[list[int]]
    joined_headers: list[list[int]]

    def assemble(self, parts: Sequence[tuple[int, Sequence[int]]]) -> list[int]:
        """Return the prompt ids for ``(document, token ids)`` parts in order."""
        ids = list(self.prefix)
        for number, (document, tokens) in enumerate(parts):
            ids.extend(self.headers[document] if number == 0 else self.joined_headers[document])
            ids.extend(tokens)
        ids.extend(self.suffix)
        return ids

    def overhead(self, documents: Sequence[int]) -> int:
        """Count the prompt tokens outside the document texts when ``documents`` appear, in order."""
        parts = [(document, ()) for document in documents]
        return len(self.assemble(parts))


def build_frame(
    tokenizer, names: Sequence[str], question: str | None, instruction: str, system: str | None = None
) -> PromptFrame:
    """Tokenise the prompt around the document texts, for documents named ``names``.

    Renders the prompt once with placeholder text and cuts it around the
    placeholder document; each piece is tokenised on its own.
    """
    placeholder = PromptDocument(_NAME_PLACEHOLDER, _TEXT_PLACEHOLDER)
    rendered = render_prompt(tokenizer, chat_messages([placeholder], question, instruction, system))
    block = document_block(placeholder)
    at = rendered.find(block)
    if at < 0:
        raise ModelError(
            "the chat template rewrites the document text, so a prompt cannot be assembled from kept tokens; "
            "pass --no-chunk and keep the input within the window"
        )
    prefix = token_ids(tokenizer, rendered[:at])
    suffix = token_ids(tokenizer, rendered[at + len(block):])
    headers = [token_ids(tokenizer, document_header(name)) for name in names]
    joined = [token_ids(tokenizer, PART_SEPARATOR + document_header(name)) for name in names]
    return PromptFrame(prefix, suffix, headers, joined)
