"""Error-correcting code of the watermark payload (v2 marks): a terminated convolutional code with a soft-decision
Viterbi decoder, in numpy.

Code: constraint length K = 7, generators 133, 171 (octal; rate 1/2, the NASA/CCSDS "standard" code) and 165
(rate 1/3, as in LTE), so the decoder corrects bursts of the channel's weakest bits rather than single errors
(Viterbi 1967, "Error bounds for convolutional codes and an asymptotically optimum decoding algorithm"). The
encoder starts in state 0 and is flushed with K - 1 zero bits, so the decoder knows both ends of the trellis.

Soft values in: one real number per coded bit, positive = "1 more likely", proportional to the log-likelihood
ratio (scale does not matter to Viterbi); 0 for an erased bit. The detector's per-bit correlations, weighted by
each frequency's measured channel gain and summed over frames, are exactly such values.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

K = 7                                    # constraint length: 2 ** (K - 1) = 64 states
GENERATORS = {2: (0o133, 0o171), 3: (0o133, 0o171, 0o165)}   # 1 / rate -> generator polynomials
STATES = 1 << (K - 1)


def _parity(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    out = np.zeros_like(x)
    while np.any(x):
        out ^= x & 1
        x >>= 1
    return out


def _trellis(gens: Tuple[int, ...]):
    """For each (state, input bit): the next state and the coded output bits [64, 2, n]. The register holds
    the newest bit in its top position: reg = bit << (K - 1) | state; next state = reg >> 1."""
    s = np.arange(STATES)[:, None]
    b = np.arange(2)[None, :]
    reg = (b << (K - 1)) | s
    out = np.stack([_parity(reg & g) for g in gens], axis=-1)
    return reg >> 1, out


def coded_length(n_info: int, inv_rate: int = 2) -> int:
    return (n_info + K - 1) * inv_rate


def encode(bits: Sequence[int], inv_rate: int = 2) -> np.ndarray:
    """0/1 info bits -> 0/1 coded bits, (len + K - 1) * inv_rate of them (the zero tail included)."""
    nxt, out = _trellis(GENERATORS[inv_rate])
    state, coded = 0, []
    for bit in list(np.asarray(bits, np.int64)) + [0] * (K - 1):
        coded.extend(out[state, int(bit)])
        state = int(nxt[state, int(bit)])
    return np.array(coded, np.int64)


def decode(soft: Sequence[float], n_info: int, inv_rate: int = 2) -> np.ndarray:
    """Maximum-likelihood info bits (0/1, n_info of them) for soft values (positive = 1) of a terminated
    codeword: the path through the trellis that maximises sum(soft * (2 * coded - 1))."""
    soft = np.asarray(soft, np.float64)
    steps = n_info + K - 1
    if soft.shape != (steps * inv_rate,):
        raise ValueError(f"expected {steps * inv_rate} soft values for {n_info} info bits, got {soft.shape}")
    _, out = _trellis(GENERATORS[inv_rate])
    sign = 2.0 * out - 1.0                                   # [64, 2, n]
    ns = np.arange(STATES)
    prev = np.stack([(ns & (STATES // 2 - 1)) << 1, ((ns & (STATES // 2 - 1)) << 1) | 1])  # [2, 64]
    bit = ns >> (K - 2)                                      # the input bit that leads into ns
    metric = np.full(STATES, -np.inf)
    metric[0] = 0.0
    choice = np.zeros((steps, STATES), np.int64)
    for t in range(steps):
        y = soft[t * inv_rate:(t + 1) * inv_rate]
        bm = sign @ y                                        # [64, 2]: branch metric per (state, bit)
        cand = metric[prev] + bm[prev, bit[None, :]]         # [2, 64]
        if t >= n_info:                                      # tail: only zero input bits
            cand[:, bit == 1] = -np.inf
        c = np.argmax(cand, axis=0)
        choice[t] = c
        metric = cand[c, ns]
    state, bits = 0, np.zeros(steps, np.int64)
    for t in range(steps - 1, -1, -1):
        bits[t] = state >> (K - 2)
        state = int(prev[choice[t, state], state])
    return bits[:n_info]
