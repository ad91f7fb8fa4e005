"""The built-in model's training loop: attention supervision, a smoke run, resume and export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from wavefilter_cli.models import load_model
from wavefilter_cli.models.llada import LLaDAConfig, LLaDAModelLM
from wavefilter_cli.training.supervision import NO_SOURCE, CopySources, SupervisedAttention, head_loss
from wavefilter_cli.training.data import Sample
from wavefilter_cli.training.train import (
    BatchSource,
    Stage,
    TrainConfig,
    export_model,
    learning_rate,
    lr_cycles,
    supervised_attention,
    train,
)

HAYSTACK = Path(__file__).resolve().parents[2] / "shared" / "data" / "haystack"
needs_haystack = pytest.mark.skipif(not HAYSTACK.is_dir(), reason="needs the haystack books")


BUILTIN = Path(__file__).resolve().parents[1] / "wavefilter_cli" / "builtin_model"


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(BUILTIN)


def ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_copy_sources_longest_context(tokenizer) -> None:
    prompt = ids(tokenizer, "the gate code is red and the door code is blue. What is the door code?")
    answer = ids(tokenizer, "The door code is blue")
    sources = CopySources(tokenizer)(prompt, answer, skip=set())
    # "blue" follows "door code is" once in the prompt: that occurrence is its source.
    value = prompt.index(ids(tokenizer, " blue")[0])
    assert sources[-1] == value
    # " is" matches "door code is" (not "gate code is").
    assert sources[-2] == value - 1
    # The first answer token has no left context and occurs more than once (case-folded).
    assert sources[0] == NO_SOURCE
    # "door" after "The" matches "the door" twice; the later one (the question) wins.
    assert sources[1] == len(prompt) - 3


def test_copy_sources_skip_and_absent_tokens(tokenizer) -> None:
    prompt = ids(tokenizer, "one house two garden three")
    answer = ids(tokenizer, " garden letter")
    eos = tokenizer.eos_token_id
    sources = CopySources(tokenizer)(prompt, answer + [eos], skip={eos})
    # " garden" occurs once, so it is its own source even without agreeing context.
    assert sources[0] == 3
    assert sources[1] == NO_SOURCE  # " letter" is not in the prompt
    assert sources[-1] == NO_SOURCE  # skipped


def test_head_loss_low_on_target() -> None:
    torch.manual_seed(0)
    batch, heads, length, dim = 2, 2, 6, 8
    k = torch.randn(batch, heads, length, dim)
    rows = torch.tensor([[1, 4], [2, 5]])
    targets = torch.tensor([[3, NO_SOURCE], [0, 1]])
    q = torch.zeros(batch, heads, length, dim)
    # Queries equal to 20 × their target key put almost all attention on it.
    for b in range(batch):
        for r in range(rows.shape[1]):
            if targets[b, r] != NO_SOURCE:
                q[b, 0, rows[b, r]] = 20 * k[b, 0, targets[b, r]]
    aligned = head_loss(q, k, 0, 1, rows, targets)
    random_q = head_loss(torch.randn_like(q), k, 0, 1, rows, targets)
    assert aligned < 0.05 < random_q


def tiny_model(n_layers: int = 2, n_kv_heads: int = 4) -> LLaDAModelLM:
    """A seeded 32-wide LLaDA with a 64-token vocabulary whose mask id is 1."""
    config = LLaDAConfig(d_model=32, n_layers=n_layers, n_heads=4, n_kv_heads=n_kv_heads, mlp_hidden_size=64,
                         vocab_size=64, embedding_size=64, max_sequence_length=64, mask_token_id=1)
    torch.manual_seed(0)
    return LLaDAModelLM(config)


def supervised_batch():
    """Two 12-token rows whose last 4 tokens are the loss region, and a one-stage config scoring 5 positions."""
    x = torch.randint(2, 64, (2, 12))
    region = torch.zeros(2, 12, dtype=torch.bool)
    region[:, 8:] = True
    train_config = TrainConfig(supervised_positions=5, stages=[Stage(8, 8, 1)], batch_tokens=16)
    return x, region, train_config


def test_supervised_attention_matches_dense() -> None:
    model = tiny_model()
    x, region, train_config = supervised_batch()
    context = supervised_attention(train_config, region, torch.tensor([[2, 3, NO_SOURCE, 0]] * 2), torch.Generator())
    assert isinstance(context, SupervisedAttention)
    assert context.previous_index.shape == (2, 5)
    assert int(context.previous_index.min()) >= 2
    dense = model(x).logits
    supervised = model(x, attention=context).logits
    torch.testing.assert_close(supervised, dense)
    loss = context.loss
    assert loss.ndim == 0
    assert loss.item() > 0
    assert loss.requires_grad
    # A stage that supervises copy heads in two layers adds a second copy term.
    targets = torch.tensor([[2, 3, NO_SOURCE, 0]] * 2)
    one_layer = supervised_attention(train_config, region, targets, torch.Generator().manual_seed(1))
    two_layers = supervised_attention(train_config, region, targets, torch.Generator().manual_seed(1),
                                      Stage(8, 8, 1, copy_layers=[0, 1]))
    assert two_layers.copy_layer == (0, 1)
    model(x, attention=one_layer)
    model(x, attention=two_layers)
    assert two_layers.loss.item() > one_layer.loss.item()


def test_supervision_off_returns_no_context() -> None:
    config = TrainConfig(supervision_weight=0.0)
    region = torch.ones(1, 4, dtype=torch.bool)
    assert supervised_attention(config, region, torch.zeros(1, 4, dtype=torch.long), torch.Generator()) is None


def test_learning_rate_restarts_at_a_stage() -> None:
    plain = TrainConfig(lr=2e-3, warmup_steps=10, min_lr_ratio=0.1, stages=[Stage(96, 128, 100)])
    restarted = TrainConfig(lr=2e-3, warmup_steps=10, min_lr_ratio=0.1,
                            stages=[Stage(96, 128, 100), Stage(96, 256, 50, restart_lr=1e-3)])
    assert lr_cycles(restarted) == [(0, 100, 2e-3), (100, 150, 1e-3)]
    # The first cycle is the schedule the run would have had without the second stage.
    for step in (0, 9, 10, 55, 99):
        assert learning_rate(restarted, step) == pytest.approx(learning_rate(plain, step))
    assert learning_rate(restarted, 99) == pytest.approx(2e-4, rel=0.01)
    # The second cycle warms up again from almost zero to its own peak, then decays to 10 % of it.
    assert learning_rate(restarted, 100) == pytest.approx(1e-4)
    assert learning_rate(restarted, 109) == pytest.approx(1e-3)
    assert learning_rate(restarted, 149) == pytest.approx(1e-4, rel=0.02)
    # A restart on the first stage is simply the run's own peak.
    first = TrainConfig(lr=2e-3, warmup_steps=10, stages=[Stage(96, 128, 100, restart_lr=5e-4)])
    assert lr_cycles(first) == [(0, 100, 2e-3)]


class CountingSamples:
    """Stands in for the sample generator: records the tasks asked for and returns filler samples."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.asked: list[str] = []

    def make(self, task: str, target_tokens: int, rng) -> Sample:
        self.asked.append(task)
        answer = [self.tokenizer.eos_token_id] * 32
        return Sample(task, [5] * target_tokens, answer, "", "", "")


def test_stage_task_weights_replace_the_run_mix(tokenizer) -> None:
    config = TrainConfig(batch_tokens=4096, mlm_share=0.0)
    samples = CountingSamples(tokenizer)
    source = BatchSource(config, lambda: samples, seed=0)
    for _ in range(4):
        source.next(Stage(96, 128, 1, task_weights={"niah_multikey": 1.0}))
    assert samples.asked and set(samples.asked) == {"niah_multikey"}
    samples.asked.clear()
    for _ in range(4):
        source.next(Stage(96, 128, 1))
    assert set(samples.asked) > {"niah_single", "niah_multikey"}


@needs_haystack
def test_training_smoke_resume_and_export(tmp_path: Path) -> None:
    tokenizer_dir = BUILTIN
    config = TrainConfig(
        batch_tokens=512, warmup_steps=2, eval_every=4, eval_samples=1, answer_length=32,
        stages=[Stage(96, 128, 4)],
    )
    config.shape.d_model, config.shape.n_layers, config.shape.n_heads, config.shape.mlp_hidden_size = 32, 2, 4, 64
    run = tmp_path / "run"
    torch.set_num_threads(1)
    train(run, tokenizer_dir, HAYSTACK, config, max_minutes=None)
    state = json.loads((run / "checkpoint" / "state.json").read_text())
    assert state["step"] == 4
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert any("eval" in record for record in log)
    # Running again resumes at the saved step and has nothing left to do.
    train(run, tokenizer_dir, HAYSTACK, config, max_minutes=None)
    assert json.loads((run / "checkpoint" / "state.json").read_text())["step"] == 4
    # A run extended by a restart stage continues from weights alone when the optimizer moments are gone.
    (run / "checkpoint" / "optimizer.pt").unlink()
    saved = json.loads((run / "train_config.json").read_text())
    saved["stages"].append({"min_length": 96, "max_length": 128, "steps": 2, "restart_lr": 1e-3})
    (run / "train_config.json").write_text(json.dumps(saved))
    train(run, tokenizer_dir, HAYSTACK, config, max_minutes=None)
    assert json.loads((run / "checkpoint" / "state.json").read_text())["step"] == 6
    assert (run / "checkpoint" / "optimizer.pt").exists()
    out = tmp_path / "export"
    export_model(run, tokenizer_dir, out)
    model = load_model(str(out), device="cpu")
    assert model.config.n_layers == 2
    exported = json.loads((out / "config.json").read_text())
    assert "lookup-only" in exported["wavefilter_capabilities"]
    assert exported["wavefilter_defaults"] == {"cache.refresh_every": 8}
    assert model.config.rope_scaling_type == "dynamic"


def test_cached_prompt_attention_matches_a_prefix_cache_step() -> None:
    from wavefilter_cli.cache import build_cache
    from wavefilter_cli.generation import _block_logits
    from wavefilter_cli.training.cached_prompt import CachedPromptAttention, record_prompt

    model = tiny_model(n_layers=3, n_kv_heads=2).eval()
    prompt, answer = 10, 6
    x = torch.randint(2, 64, (1, prompt + answer))
    masked = x.clone()
    masked[:, prompt:] = 1
    noised = x.clone()
    noised[:, prompt + 1 :: 2] = 1

    # Inference: the prefix cache encodes the prompt beside a fully masked block, then serves it.
    policy = build_cache("prefix")
    policy.begin(masked, prompt)
    _block_logits(model, policy, masked, None, prompt, prompt + answer, 0, 0, prompt + answer)
    policy.end_step()
    served = _block_logits(model, policy, noised, None, prompt, prompt + answer, 1, 0, prompt + answer)

    recorded = record_prompt(model, x, prompt, mask_id=1)
    trained = model(noised, attention=CachedPromptAttention(recorded), logits_index=slice(prompt, None)).logits
    torch.testing.assert_close(trained, served)
    # Dense attention over the same canvas gives other logits: the prompt then attends to the unmasked tokens.
    dense = model(noised, logits_index=slice(prompt, None)).logits
    assert not torch.allclose(dense, served, atol=1e-4)


def test_cached_prompt_loss_wraps_the_supervision() -> None:
    from wavefilter_cli.training.train import diffusion_loss

    model = tiny_model()
    x, region, train_config = supervised_batch()
    targets = torch.tensor([[2, 3, NO_SOURCE, 0]] * 2)
    context = supervised_attention(train_config, region, targets, torch.Generator())
    loss, _ = diffusion_loss(model, x, region, 1, torch.Generator().manual_seed(3), attention=context, cached_prompt=8)
    assert loss.requires_grad and context.loss.requires_grad
    (loss + context.loss).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
