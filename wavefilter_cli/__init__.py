"""wavefilter: long-document answers from diffusion LLMs with a wavelet-filtered sparse KV cache."""

__version__ = "0.1.0"
