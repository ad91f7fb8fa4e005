"""Inputs longer than the model's window: mapped prompts, chunk scoring, token selection, map-reduce flow and citations.

``prompts`` maps prompt tokens to source characters, ``scoring`` scores a
chunk's tokens with a key-token filter, ``selection`` keeps the best tokens
of all chunks and builds the merged prompt, ``mapreduce`` contains the
map-reduce control flow, and ``citations`` finds the source spans an answer
attended to. The CLI drives them from ``cli.long_inputs``.
"""
