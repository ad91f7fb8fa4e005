"""Prompt layout shared by the CLI, the evaluation suite and the built-in model's training data.

A prompt is one user turn: a fixed instruction, each document under a header
line naming its source, and the question last, so the question sits in the
prompt tail that cache filters always keep. The tokenizer's chat template
wraps the turn; a tokenizer without a template gets the plain text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

ASK_INSTRUCTION = "Answer the question using the documents below. Reply with the answer only."
SUMMARIZE_INSTRUCTION = "Summarize the documents below. Keep names, numbers and conclusions."
#: Text between the instruction, the document blocks and the question in the user turn.
PART_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class PromptDocument:
    """One document as the model sees it: its display name and normalised text."""

    name: str
    text: str


def document_block(doc: PromptDocument) -> str:
    """Render one document under its header line."""
    return f"{document_header(doc.name)}{doc.text.strip()}"


def document_header(name: str) -> str:
    """Return the line that opens a document block, newline included."""
    return f"[Document: {name}]\n"


def user_message(documents: Sequence[PromptDocument], question: str | None, instruction: str) -> str:
    """Build the user turn: instruction, documents, then the question."""
    parts = [instruction]
    parts.extend(document_block(doc) for doc in documents)
    if question:
        parts.append(f"Question: {question.strip()}")
    return PART_SEPARATOR.join(parts)


def chat_messages(
    documents: Sequence[PromptDocument],
    question: str | None,
    instruction: str = ASK_INSTRUCTION,
    system: str | None = None,
) -> list[dict[str, str]]:
    """Return the conversation in the ``[{"role", "content"}]`` form chat templates take."""
    messages = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": user_message(documents, question, instruction)})
    return messages


def encode_prompt(tokenizer, messages: list[dict[str, str]]) -> list[int]:
    """Token ids of ``messages`` with the generation prompt appended.

    Uses the tokenizer's chat template when it has one; otherwise the turns are
    joined as plain text, which base (non-instruct) checkpoints expect.
    """
    if getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        # transformers 5 returns a BatchEncoding; 4.x returns a list of ids.
        if hasattr(ids, "keys") and "input_ids" in ids:
            ids = ids["input_ids"]
        return list(ids)
    text = "\n\n".join(m["content"] for m in messages) + "\n\nAnswer:"
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def render_prompt(tokenizer, messages: list[dict[str, str]]) -> str:
    """Return the prompt text that ``encode_prompt`` tokenises, special tokens written out.

    Tokenising it with ``add_special_tokens=False`` gives the ids of
    ``encode_prompt``, because that is how ``apply_chat_template`` tokenises a
    rendered chat (transformers 5.25, ``sanitize_control_tokens`` off).
    ``return_offsets_mapping=True`` then maps every token to its characters.
    """
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return "\n\n".join(m["content"] for m in messages) + "\n\nAnswer:"
