"""Wavelet transforms and the sequence filters built on them."""
