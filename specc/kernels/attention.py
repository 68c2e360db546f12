"""The memory-bound parts of attention: the masked softmax of the scores and its gradient, and additive
(tanh) scores, which have no GEMM form. Arrays are C-contiguous, float32 or float64; scores are (N, T, S):
N stacked (batch, head) pairs, T query steps, S key steps."""
import math

from numba import njit

# A softmax over the rows of (N, T, S) scores is shift_scores (or shift_masked_scores), numpy's exp
# (vectorized: numba's scalar exp is several times slower) and normalize_rows, all in place. Without masks a
# cell is kept when j <= i if `causal`, always otherwise; masked cells are 0 before the exp (cheaper than
# exp(-inf)) and 0 after normalize_rows. With masks, masked cells are -inf before the exp.


@njit(cache=True, nogil=True)
def shift_scores(scores, causal):
    """Each row's kept scores less the largest of them (so their exp is at most 1); masked cells set to 0."""
    n_all, t, s = scores.shape
    for n in range(n_all):
        for i in range(t):
            end = min(i + 1, s) if causal else s
            row = scores[n, i]
            top = row[0]
            for j in range(1, end):
                top = max(top, row[j])
            for j in range(end):
                row[j] -= top
            for j in range(end, s):
                row[j] = 0


@njit(cache=True, nogil=True)
def shift_masked_scores(scores, keep, empty_keeps_all):
    """Each row's kept scores less the largest of them, the others -inf. Cell (n, i, j) is kept when
    keep[n // heads, i, j] (keep is (B, T, S), shared by the heads of a batch row: N = B * heads). A row
    that keeps no cell keeps them all when `empty_keeps_all`, else none (its weights are then 0)."""
    n_all, t, s = scores.shape
    heads = n_all // keep.shape[0]
    for n in range(n_all):
        for i in range(t):
            row, kept = scores[n, i], keep[n // heads, i]
            top = -math.inf
            for j in range(s):
                if kept[j]:
                    top = max(top, row[j])
            if top == -math.inf and empty_keeps_all:
                for j in range(s):
                    top = max(top, row[j])
                for j in range(s):
                    row[j] -= top
                continue
            for j in range(s):
                row[j] = row[j] - top if kept[j] else -math.inf


@njit(cache=True, nogil=True)
def normalize_rows(weights, causal):
    """Each row's kept weights divided by their sum (a row of zeros stays zeros); masked cells set to 0."""
    n_all, t, s = weights.shape
    for n in range(n_all):
        for i in range(t):
            end = min(i + 1, s) if causal else s
            row = weights[n, i]
            total = row[0] - row[0]  # a zero of the array's dtype
            for j in range(end):
                total += row[j]
            if total > 0:
                inv = 1 / total
                for j in range(end):
                    row[j] *= inv
            for j in range(end, s):
                row[j] = 0


@njit(cache=True, nogil=True)
def softmax_grad(probs, dprobs):
    """dprobs <- the gradient of the scores: p * (dp - sum over j of dp * p), row by row. Masked cells have
    p = 0, so they get none."""
    n_all, t, s = probs.shape
    for n in range(n_all):
        for i in range(t):
            dot = 0.0
            for j in range(s):
                dot += probs[n, i, j] * dprobs[n, i, j]
            for j in range(s):
                dprobs[n, i, j] = probs[n, i, j] * (dprobs[n, i, j] - dot)


@njit(cache=True, nogil=True)
def additive_scores(q, k, w, inner, scores):
    """scores[b, i, j] <- sum over d of w[d] * tanh(inner * (q[b, i, d] + k[b, j, d])).

    q is (B, T, D), k (B, S, D), w (D,), scores (B, T, S)."""
    batch, t, dim = q.shape
    s = k.shape[1]
    for b in range(batch):
        for i in range(t):
            for j in range(s):
                total = 0.0
                for d in range(dim):
                    total += w[d] * math.tanh(inner * (q[b, i, d] + k[b, j, d]))
                scores[b, i, j] = total


@njit(cache=True, nogil=True)
def additive_scores_grad(q, k, w, inner, dscores, dq, dk, dw):
    """The gradients of additive_scores for dscores: adds into dq (B, T, D), dk (B, S, D) and dw (D,), and
    returns the gradient of `inner`. With u = inner * (q + k) and th = tanh(u):
    d(th)/du = 1 - th^2, so dq[b, i, d] and dk[b, j, d] gain g = dscores * w[d] * (1 - th^2) * inner,
    dw[d] gains dscores * th, and inner gains dscores * w[d] * (1 - th^2) * (q + k)."""
    batch, t, dim = q.shape
    s = k.shape[1]
    dinner = 0.0
    for b in range(batch):
        for i in range(t):
            for j in range(s):
                g = dscores[b, i, j]
                for d in range(dim):
                    both = q[b, i, d] + k[b, j, d]
                    th = math.tanh(inner * both)
                    slope = g * w[d] * (1.0 - th * th)
                    dq[b, i, d] += slope * inner
                    dk[b, j, d] += slope * inner
                    dw[d] += g * th
                    dinner += slope * both
    return dinner
