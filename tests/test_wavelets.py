"""Tests for the torch wavelet transforms against PyWavelets."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import pywt
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from wavefilter_cli.filters.wavelets import (
    MODES,
    block_detail_energy,
    block_statistics,
    haar_pyramid,
    max_level,
    wavedec,
    waverec,
)

WAVELETS = ["haar", "db2", "sym4", "db4", "coif1"]
LENGTHS = [1, 2, 5, 8, 13, 32, 57, 100]
BATCH_SHAPE = (2, 3)

# pywt warns on levels above its maximum, which these tests request on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:Level value of .* is too high:UserWarning")


def _levels_to_check(length: int, wavelet: str) -> range:
    """Levels 0 .. max_level, plus one level beyond it, which pywt also accepts."""
    return range(0, pywt.dwt_max_level(length, pywt.Wavelet(wavelet).dec_len) + 2)


def _pywt_rows(x: np.ndarray, wavelet: str, mode: str, level: int) -> list[list[np.ndarray]] | None:
    """Decompose every row of ``x`` (..., T) with pywt, or return None where pywt raises."""
    rows = x.reshape(-1, x.shape[-1])
    try:
        return [pywt.wavedec(row, wavelet, mode=mode, level=level) for row in rows]
    except ValueError:
        return None


def _assert_rows_match(got: list[torch.Tensor], expected_rows: list[list[np.ndarray]], tolerance: float, label: str) -> None:
    assert len(got) == len(expected_rows[0]), label
    for index, coefficient in enumerate(got):
        flat = coefficient.reshape(-1, coefficient.shape[-1]).double().numpy()
        for row, expected in enumerate(expected_rows):
            assert flat[row].shape == expected[index].shape, f"{label} coeffs[{index}] row {row}"
            np.testing.assert_allclose(flat[row], expected[index], rtol=tolerance, atol=tolerance, err_msg=f"{label} coeffs[{index}] row {row}")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("wavelet", WAVELETS)
def test_wavedec_matches_pywt_float64(wavelet: str, mode: str) -> None:
    rng = np.random.default_rng(0)
    for length in LENGTHS:
        x = rng.standard_normal((*BATCH_SHAPE, length))
        for level in _levels_to_check(length, wavelet):
            label = f"{wavelet} {mode} T={length} level={level}"
            expected = _pywt_rows(x, wavelet, mode, level)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                if expected is None:
                    with pytest.raises(ValueError):
                        wavedec(torch.from_numpy(x), wavelet, level=level, mode=mode)
                    continue
                got = wavedec(torch.from_numpy(x), wavelet, level=level, mode=mode)
            for coefficient in got:
                assert coefficient.shape[:-1] == BATCH_SHAPE, label
                assert coefficient.dtype == torch.float64, label
            _assert_rows_match(got, expected, 1e-10, label)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("wavelet", WAVELETS)
def test_waverec_matches_pywt_float64(wavelet: str, mode: str) -> None:
    rng = np.random.default_rng(1)
    for length in LENGTHS:
        x = rng.standard_normal((*BATCH_SHAPE, length))
        for level in _levels_to_check(length, wavelet):
            label = f"{wavelet} {mode} T={length} level={level}"
            expected_coeffs = _pywt_rows(x, wavelet, mode, level)
            if expected_coeffs is None:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                coeffs = wavedec(torch.from_numpy(x), wavelet, level=level, mode=mode)
            try:
                expected = [pywt.waverec(row, wavelet, mode=mode) for row in expected_coeffs]
            except ValueError:
                with pytest.raises(ValueError):
                    waverec(coeffs, wavelet, mode=mode)
                continue

            got = waverec(coeffs, wavelet, mode=mode)
            flat = got.reshape(-1, got.shape[-1]).numpy()
            assert got.shape[:-1] == BATCH_SHAPE, label
            for row, reference in enumerate(expected):
                assert flat[row].shape == reference.shape, f"{label} row {row}"
                np.testing.assert_allclose(flat[row], reference, rtol=1e-10, atol=1e-10, err_msg=f"{label} row {row}")


@pytest.mark.parametrize("mode", ["symmetric", "periodization", "zero"])
@pytest.mark.parametrize("wavelet", WAVELETS)
def test_waverec_inverts_wavedec(wavelet: str, mode: str) -> None:
    rng = np.random.default_rng(2)
    for length in [16, 31, 64, 101]:
        x = torch.from_numpy(rng.standard_normal((*BATCH_SHAPE, length)))
        for level in range(0, max_level(length, wavelet) + 1):
            restored = waverec(wavedec(x, wavelet, level=level, mode=mode), wavelet, mode=mode)
            assert restored.shape[-1] in (length, length + 1), f"{wavelet} {mode} T={length} level={level}"
            torch.testing.assert_close(restored[..., :length], x, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("mode", ["symmetric", "periodization", "zero"])
@pytest.mark.parametrize("wavelet", WAVELETS)
def test_float32_matches_pywt(wavelet: str, mode: str) -> None:
    rng = np.random.default_rng(3)
    for length in [7, 32, 57]:
        x = rng.standard_normal((*BATCH_SHAPE, length))
        for level in range(1, max_level(length, wavelet) + 1):
            label = f"{wavelet} {mode} T={length} level={level}"
            expected = _pywt_rows(x, wavelet, mode, level)
            assert expected is not None, label
            got = wavedec(torch.from_numpy(x).float(), wavelet, level=level, mode=mode)
            assert all(c.dtype == torch.float32 for c in got), label
            _assert_rows_match(got, expected, 1e-5, label)

            restored = waverec(got, wavelet, mode=mode)
            reference = pywt.waverec(expected[0], wavelet, mode=mode)
            assert restored.dtype == torch.float32, label
            np.testing.assert_allclose(restored[0, 0].double().numpy(), reference, rtol=1e-5, atol=1e-5, err_msg=label)


@settings(max_examples=80, deadline=None)
@given(
    length=st.integers(min_value=1, max_value=300),
    wavelet=st.sampled_from(WAVELETS),
    mode=st.sampled_from(["symmetric", "periodization", "zero"]),
    level_fraction=st.floats(min_value=0.0, max_value=1.0),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_random_lengths_match_pywt(length: int, wavelet: str, mode: str, level_fraction: float, seed: int) -> None:
    deepest = max_level(length, wavelet)
    level = round(level_fraction * deepest)
    x = np.random.default_rng(seed).standard_normal((2, length))
    expected = [pywt.wavedec(row, wavelet, mode=mode, level=level) for row in x]

    got = wavedec(torch.from_numpy(x), wavelet, level=level, mode=mode)
    _assert_rows_match(got, expected, 1e-10, f"{wavelet} {mode} T={length} level={level}")

    restored = waverec(got, wavelet, mode=mode)
    reference = pywt.waverec(expected[1], wavelet, mode=mode)
    np.testing.assert_allclose(restored[1].numpy(), reference, rtol=1e-10, atol=1e-10)


def test_wavedec_along_middle_axis() -> None:
    x = torch.randn(2, 45, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    along_middle = wavedec(x, "db2", level=3, axis=1)
    along_last = wavedec(x.movedim(1, -1), "db2", level=3, axis=-1)
    for middle, last in zip(along_middle, along_last):
        assert middle.shape[0] == 2
        assert middle.shape[2] == 3
        torch.testing.assert_close(middle, last.movedim(-1, 1), rtol=0, atol=0)

    restored = waverec(along_middle, "db2", axis=1)
    torch.testing.assert_close(restored[:, :45], x, rtol=1e-10, atol=1e-10)


def test_default_level_is_max_level() -> None:
    x = torch.randn(100, dtype=torch.float64)
    coeffs = wavedec(x, "db2")
    assert len(coeffs) == pywt.dwt_max_level(100, 4) + 1
    assert [c.shape[-1] for c in coeffs] == [len(c) for c in pywt.wavedec(x.numpy(), "db2")]


def test_default_wavelet_is_haar() -> None:
    x = torch.randn(16, dtype=torch.float64)
    expected = pywt.wavedec(x.numpy(), "haar")
    got = wavedec(x)
    assert len(got) == len(expected)
    for coefficient, reference in zip(got, expected):
        np.testing.assert_allclose(coefficient.numpy(), reference, rtol=1e-12, atol=1e-12)


def test_wavelet_object_accepted() -> None:
    x = torch.randn(33, dtype=torch.float64)
    by_object = wavedec(x, pywt.Wavelet("sym4"), level=2)
    by_name = wavedec(x, "sym4", level=2)
    for a, b in zip(by_object, by_name):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_odd_length_reconstructs_one_longer() -> None:
    x = torch.arange(5, dtype=torch.float64)
    restored = waverec(wavedec(x, "haar", level=1), "haar")
    expected = pywt.waverec(pywt.wavedec(x.numpy(), "haar", level=1), "haar")
    assert restored.shape[-1] == 6
    assert expected.shape[-1] == 6
    np.testing.assert_allclose(restored.numpy(), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(restored[:5], x)


def test_waverec_none_detail_matches_pywt() -> None:
    x = np.random.default_rng(5).standard_normal(40)
    coeffs = pywt.wavedec(x, "db2", level=2)
    expected = pywt.waverec([coeffs[0], None, coeffs[2]], "db2")
    got = waverec([torch.from_numpy(coeffs[0]), None, torch.from_numpy(coeffs[2])], "db2")
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_waverec_single_entry_returns_it() -> None:
    approx = torch.randn(7, dtype=torch.float64)
    assert waverec([approx], "db2") is approx


def test_waverec_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="coeffs\\[1\\]"):
        waverec([torch.ones(3, dtype=torch.float64), torch.ones(5, dtype=torch.float64)], "db2")


def test_waverec_rejects_empty_list() -> None:
    with pytest.raises(ValueError, match="approximation"):
        waverec([], "haar")


def test_level_above_max_warns() -> None:
    with pytest.warns(UserWarning, match="max_level"):
        coeffs = wavedec(torch.ones(5, dtype=torch.float64), "db2", level=5)
    assert [c.shape[-1] for c in coeffs] == [len(c) for c in pywt.wavedec(np.ones(5), "db2", level=5)]


def test_level_zero_returns_input() -> None:
    x = torch.randn(3, 9, dtype=torch.float64)
    coeffs = wavedec(x, "db2", level=0)
    assert len(coeffs) == 1
    torch.testing.assert_close(coeffs[0], x, rtol=0, atol=0)


def test_negative_level_raises() -> None:
    with pytest.raises(ValueError, match="level"):
        wavedec(torch.ones(8), "haar", level=-1)


def test_unknown_wavelet_raises() -> None:
    with pytest.raises(ValueError, match="wavelist"):
        wavedec(torch.ones(8), "not-a-wavelet")


def test_continuous_wavelet_raises() -> None:
    with pytest.raises(ValueError, match="morl"):
        wavedec(torch.ones(8), "morl")


def test_unknown_mode_raises() -> None:
    with pytest.raises(ValueError, match="mode"):
        wavedec(torch.ones(8), "haar", mode="smooth")


def test_integer_input_raises() -> None:
    with pytest.raises(TypeError, match="floating-point"):
        wavedec(torch.ones(8, dtype=torch.int64), "haar")


def test_empty_axis_raises() -> None:
    with pytest.raises(ValueError, match="length 0"):
        wavedec(torch.ones(3, 0), "haar")


def test_max_level_matches_pywt() -> None:
    for wavelet in [*WAVELETS, "db8", "bior3.5"]:
        filter_length = pywt.Wavelet(wavelet).dec_len
        for length in range(0, 1100):
            expected = pywt.dwt_max_level(length, filter_length)
            assert max_level(length, wavelet) == expected, f"{wavelet} T={length}"
            assert max_level(length, filter_length) == expected, f"F={filter_length} T={length}"


def test_max_level_rejects_short_filter() -> None:
    with pytest.raises(ValueError, match="filter length"):
        max_level(10, 1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_wavedec_on_cuda_matches_cpu() -> None:
    x = torch.randn(4, 8, 77, dtype=torch.float64)
    for mode in MODES:
        on_cpu = wavedec(x, "sym4", level=3, mode=mode)
        on_gpu = wavedec(x.cuda(), "sym4", level=3, mode=mode)
        for cpu_coefficient, gpu_coefficient in zip(on_cpu, on_gpu):
            assert gpu_coefficient.device.type == "cuda"
            torch.testing.assert_close(gpu_coefficient.cpu(), cpu_coefficient, rtol=1e-10, atol=1e-10)
        restored = waverec(on_gpu, "sym4", mode=mode)
        torch.testing.assert_close(restored.cpu(), waverec(on_cpu, "sym4", mode=mode), rtol=1e-10, atol=1e-10)
    pyramid = haar_pyramid(x.cuda(), 3)
    stats = block_statistics(x.cuda(), 3, feature_axis=1)
    torch.testing.assert_close(pyramid.details[0].cpu(), haar_pyramid(x, 3).details[0])
    torch.testing.assert_close(stats.deviation_energy.cpu(), block_statistics(x, 3, feature_axis=1).deviation_energy)


# Haar fast path


@pytest.mark.parametrize("length", [1, 2, 7, 8, 37, 64, 100])
def test_haar_pyramid_matches_pywt_zero_mode(length: int) -> None:
    x = np.random.default_rng(length).standard_normal((2, length, 3))
    for levels in range(0, 9):
        pyramid = haar_pyramid(torch.from_numpy(x), levels, axis=1)
        expected = pywt.wavedec(x, "haar", mode="zero", level=levels, axis=1)
        assert len(pyramid.approximations) == levels
        assert len(pyramid.details) == levels
        for level in range(1, levels + 1):
            label = f"T={length} levels={levels} level={level}"
            detail = pyramid.details[level - 1].numpy()
            assert detail.shape == (2, math.ceil(length / 2**level), 3), label
            np.testing.assert_allclose(detail, expected[levels - level + 1], rtol=1e-12, atol=1e-12, err_msg=label)
        if levels:
            np.testing.assert_allclose(pyramid.approximations[-1].numpy(), expected[0], rtol=1e-12, atol=1e-12)


def test_haar_approximation_is_scaled_block_mean() -> None:
    length = 45
    x = torch.randn(3, length, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    pyramid = haar_pyramid(x, 4)
    for level in range(1, 5):
        block = 2**level
        approximation = pyramid.approximations[level - 1]
        full_blocks = length // block
        means = x[:, : full_blocks * block].reshape(3, full_blocks, block).mean(dim=-1)
        torch.testing.assert_close(approximation[:, :full_blocks], 2 ** (level / 2) * means)
        if length % block:
            tail_sum = x[:, full_blocks * block :].sum(dim=-1)
            torch.testing.assert_close(approximation[:, -1], 2 ** (-level / 2) * tail_sum)


def test_haar_pyramid_rejects_negative_levels() -> None:
    with pytest.raises(ValueError, match="levels"):
        haar_pyramid(torch.ones(8), -1)


def test_block_statistics_matches_loop() -> None:
    length, block_log2 = 43, 3
    x = torch.randn(2, length, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    stats = block_statistics(x, block_log2, axis=1)
    per_vector = block_statistics(x, block_log2, axis=1, feature_axis=-1)

    block = 2**block_log2
    blocks = math.ceil(length / block)
    assert stats.mean.shape == (2, blocks, 5)
    assert stats.deviation_energy.shape == (2, blocks, 5)
    assert per_vector.deviation_energy.shape == (2, blocks)
    assert stats.counts.tolist() == [8, 8, 8, 8, 8, 3]
    for j in range(blocks):
        tokens = x[:, j * block : (j + 1) * block]
        mean = tokens.mean(dim=1)
        energy = (tokens - mean[:, None]).square().sum(dim=1)
        torch.testing.assert_close(stats.mean[:, j], mean)
        torch.testing.assert_close(stats.deviation_energy[:, j], energy)
        torch.testing.assert_close(per_vector.deviation_energy[:, j], energy.sum(dim=-1))


def test_block_statistics_block_of_one() -> None:
    x = torch.randn(4, 9, dtype=torch.float64)
    stats = block_statistics(x, 0)
    torch.testing.assert_close(stats.mean, x)
    torch.testing.assert_close(stats.deviation_energy, torch.zeros_like(x))


def test_block_statistics_rejects_feature_axis_equal_to_axis() -> None:
    with pytest.raises(ValueError, match="feature_axis"):
        block_statistics(torch.ones(2, 8), 1, axis=-1, feature_axis=1)


@pytest.mark.parametrize("length", [16, 37, 64, 70])
def test_block_detail_energy_parseval(length: int) -> None:
    x = torch.randn(2, 3, length, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(length))
    pyramid = haar_pyramid(x, 5, axis=2)
    for block_log2 in range(1, 6):
        block = 2**block_log2
        full_blocks = length // block
        from_details = block_detail_energy(pyramid.details, block_log2, axis=2)
        stats = block_statistics(x, block_log2, axis=2)
        assert from_details.shape == stats.deviation_energy.shape
        torch.testing.assert_close(from_details[:, :, :full_blocks], stats.deviation_energy[:, :, :full_blocks])

        # The pyramid counts missing tail tokens as zeros, so its tail block
        # matches the statistics of the zero-padded sequence.
        padded_length = math.ceil(length / block) * block
        padded = torch.nn.functional.pad(x.movedim(2, -1), (0, padded_length - length)).movedim(-1, 2)
        padded_stats = block_statistics(padded, block_log2, axis=2)
        torch.testing.assert_close(from_details, padded_stats.deviation_energy)

        summed = block_detail_energy(pyramid.details, block_log2, axis=2).sum(dim=-1)
        per_vector = block_statistics(x, block_log2, axis=2, feature_axis=-1).deviation_energy
        torch.testing.assert_close(summed[:, :, :full_blocks], per_vector[:, :, :full_blocks])


def test_block_detail_energy_needs_enough_levels() -> None:
    pyramid = haar_pyramid(torch.randn(32, dtype=torch.float64), 2)
    with pytest.raises(ValueError, match="block_log2"):
        block_detail_energy(pyramid.details, 3)
