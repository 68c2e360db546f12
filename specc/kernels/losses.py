"""Losses and their gradients in one pass over predictions; each returns the summed, weighted loss.

`scale` is 1 / (number of loss positions in the batch), the Keras reduction: the gradient written is that
of the mean loss. `row_weight` holds one weight per sample (Keras' sample_weight; empty: all 1), or one per
position, and `per_row` says how many consecutive positions share one weight. Probabilities are clipped to
[EPSILON, 1 - EPSILON] as Keras does; the gradients of probabilities treat that clipping as the identity.
Kernels of logits (`*_logits`, and the focal ones with `from_logits`) never overflow, whatever the logits.
"""
import numpy as np
from numba import njit

EPSILON = 1e-7


@njit(cache=True)
def _weight(row_weight, position, per_row):
    if row_weight.shape[0] == 0:
        return row_weight.dtype.type(1.0)
    return row_weight[position // per_row]


@njit(cache=True, error_model="numpy")
def categorical_crossentropy(pred, true, scale, row_weight, per_row, grad):
    """pred, true, grad: (positions, classes); pred rows are renormalized to sum to 1 first, as in Keras."""
    t = pred.dtype.type
    eps, s = t(EPSILON), t(scale)
    total_loss = 0.0
    for r in range(pred.shape[0]):
        w = _weight(row_weight, r, per_row)
        total = t(0.0)
        true_sum = t(0.0)
        for c in range(pred.shape[1]):
            total += pred[r, c]
            true_sum += true[r, c]
        ws = w * s
        for c in range(pred.shape[1]):
            p = min(max(pred[r, c] / total, eps), t(1.0) - eps)
            total_loss -= w * true[r, c] * np.log(p)
            # d/dpred of -sum(t log(pred / total)) = -t / pred + sum(t) / total
            grad[r, c] = (-true[r, c] / max(pred[r, c], eps * total) + true_sum / total) * ws
    return total_loss


@njit(cache=True, error_model="numpy")
def sparse_categorical_crossentropy(pred, labels, scale, row_weight, per_row, grad):
    """pred, grad: (positions, classes); labels: (positions,) integer class ids."""
    t = pred.dtype.type
    eps, s = t(EPSILON), t(scale)
    total_loss = 0.0
    for r in range(pred.shape[0]):
        ws = _weight(row_weight, r, per_row) * s
        total = t(0.0)
        for c in range(pred.shape[1]):
            total += pred[r, c]
        k = labels[r]
        for c in range(pred.shape[1]):
            grad[r, c] = ws / total
        p = min(max(pred[r, k] / total, eps), t(1.0) - eps)
        total_loss -= _weight(row_weight, r, per_row) * np.log(p)
        grad[r, k] -= ws / max(pred[r, k], eps * total)
    return total_loss


@njit(cache=True, error_model="numpy")
def binary_crossentropy(pred, true, scale, row_weight, per_row, grad):
    """Flat arrays of probabilities and 0/1 (or soft) targets."""
    t = pred.dtype.type
    eps, s, one = t(EPSILON), t(scale), t(1.0)
    total_loss = 0.0
    for i in range(pred.shape[0]):
        w = _weight(row_weight, i, per_row)
        p = min(max(pred[i], eps), one - eps)
        total_loss -= w * (true[i] * np.log(p) + (one - true[i]) * np.log(one - p))
        grad[i] = (p - true[i]) / (p * (one - p)) * (w * s)
    return total_loss


@njit(cache=True, error_model="numpy")
def squared_error(pred, true, scale, row_weight, per_row, grad):
    s = pred.dtype.type(2.0 * scale)
    total_loss = 0.0
    for i in range(pred.shape[0]):
        w = _weight(row_weight, i, per_row)
        diff = pred[i] - true[i]
        total_loss += w * diff * diff
        grad[i] = diff * (w * s)
    return total_loss


@njit(cache=True, error_model="numpy")
def absolute_error(pred, true, scale, row_weight, per_row, grad):
    s = pred.dtype.type(scale)
    total_loss = 0.0
    for i in range(pred.shape[0]):
        ws = _weight(row_weight, i, per_row) * s
        diff = pred[i] - true[i]
        total_loss += _weight(row_weight, i, per_row) * abs(diff)
        grad[i] = ws if diff > 0 else (-ws if diff < 0 else 0)
    return total_loss


@njit(cache=True, error_model="numpy")
def binary_crossentropy_logits(logits, true, scale, row_weight, per_row, grad):
    """Binary crossentropy of logits x: max(x, 0) - x t + log(1 + exp(-|x|)), which is Keras'
    -t log(sigmoid(x)) - (1 - t) log(sigmoid(-x)) without overflow; its gradient is sigmoid(x) - t."""
    t = logits.dtype.type
    s, one = t(scale), t(1.0)
    total_loss = 0.0
    for i in range(logits.shape[0]):
        w = _weight(row_weight, i, per_row)
        x = logits[i]
        e = np.exp(-abs(x))
        total_loss += w * (max(x, t(0.0)) - x * true[i] + np.log1p(e))
        sigmoid = one / (one + e) if x >= 0 else e / (one + e)
        grad[i] = (sigmoid - true[i]) * (w * s)
    return total_loss


@njit(cache=True, error_model="numpy")
def _log_softmax_row(logits, r, out):
    """out[c] = x_c - log(sum(exp(x))), shifted by the row's maximum so nothing overflows."""
    top = logits[r, 0]
    for c in range(1, logits.shape[1]):
        top = max(top, logits[r, c])
    total = logits.dtype.type(0.0)
    for c in range(logits.shape[1]):
        total += np.exp(logits[r, c] - top)
    log_total = np.log(total) + top
    for c in range(logits.shape[1]):
        out[c] = logits[r, c] - log_total


@njit(cache=True, error_model="numpy")
def categorical_crossentropy_logits(logits, true, scale, row_weight, per_row, grad):
    """-sum(t log_softmax(x)) per row; gradient softmax(x) sum(t) - t."""
    t = logits.dtype.type
    s = t(scale)
    log_p = np.empty(logits.shape[1], logits.dtype)
    total_loss = 0.0
    for r in range(logits.shape[0]):
        w = _weight(row_weight, r, per_row)
        _log_softmax_row(logits, r, log_p)
        true_sum = t(0.0)
        for c in range(logits.shape[1]):
            true_sum += true[r, c]
            total_loss -= w * true[r, c] * log_p[c]
        for c in range(logits.shape[1]):
            grad[r, c] = (np.exp(log_p[c]) * true_sum - true[r, c]) * (w * s)
    return total_loss


@njit(cache=True, error_model="numpy")
def sparse_categorical_crossentropy_logits(logits, labels, scale, row_weight, per_row, grad):
    """-log_softmax(x)[label] per row; gradient softmax(x) - one_hot(label)."""
    t = logits.dtype.type
    s = t(scale)
    log_p = np.empty(logits.shape[1], logits.dtype)
    total_loss = 0.0
    for r in range(logits.shape[0]):
        w = _weight(row_weight, r, per_row)
        _log_softmax_row(logits, r, log_p)
        k = labels[r]
        total_loss -= w * log_p[k]
        for c in range(logits.shape[1]):
            grad[r, c] = np.exp(log_p[c]) * (w * s)
        grad[r, k] -= w * s
    return total_loss


@njit(cache=True, error_model="numpy")
def binary_focal_crossentropy(pred, true, scale, row_weight, per_row, grad, gamma, alpha, balance, from_logits):
    """Keras' focal form of binary crossentropy, per value: with p = pred (sigmoid(pred) from logits),
    p_t = t p + (1 - t)(1 - p) and bce of p clipped to [EPSILON, 1 - EPSILON],
        loss = a (1 - p_t)^gamma bce,   a = t alpha + (1 - t)(1 - alpha) if balance else 1.
    The gradient treats the clipping as the identity on probabilities (as binary_crossentropy does);
    from logits it is the exact one of Keras' formula, zero for bce where the sigmoid is clipped."""
    t = pred.dtype.type
    eps, s, one, g = t(EPSILON), t(scale), t(1.0), t(gamma)
    total_loss = 0.0
    for i in range(pred.shape[0]):
        w = _weight(row_weight, i, per_row)
        y = true[i]
        if from_logits:
            e = np.exp(-abs(pred[i]))
            p = one / (one + e) if pred[i] >= 0 else e / (one + e)
            dp = e / ((one + e) * (one + e))  # d sigmoid / dx, = p (1 - p) without cancellation
        else:
            p, dp = pred[i], one
        pc = min(max(p, eps), one - eps)
        bce = -(y * np.log(pc) + (one - y) * np.log(one - pc))
        if from_logits:
            dbce = (pc - y) / (pc * (one - pc)) if eps < p < one - eps else t(0.0)
        else:
            dbce = (pc - y) / (pc * (one - pc))
        rest = one - (y * p + (one - y) * (one - p))
        factor = rest ** g
        # d(1 - p_t)/dp = 1 - 2t; at a zero base the power has no slope (gamma > 1) or none that is finite
        dfactor = g * rest ** (g - one) * (one - t(2.0) * y) if rest != 0 else t(0.0)
        a = y * t(alpha) + (one - y) * (one - t(alpha)) if balance else one
        total_loss += w * a * factor * bce
        grad[i] = a * (dfactor * bce + factor * dbce) * dp * (w * s)
    return total_loss


@njit(cache=True, error_model="numpy")
def categorical_focal_crossentropy(pred, true, scale, row_weight, per_row, grad, gamma, alpha, from_logits):
    """Keras' focal form of categorical crossentropy, per row: with o = pred / sum(pred) (softmax(pred) from
    logits) clipped to [EPSILON, 1 - EPSILON] in the log,
        loss = sum_c alpha t_c (1 - o_c)^gamma (-log clip(o_c)).
    With g_c = dloss/do_c, the gradient through the normalization is (g_c - sum_j g_j o_j) / sum(pred), through
    the softmax o_c (g_c - sum_j g_j o_j). Clipping is the identity for the gradient on probabilities; from
    logits the gradient is Keras' exact one (the log's derivative is 0 where o is clipped)."""
    t = pred.dtype.type
    eps, s, one, g, a = t(EPSILON), t(scale), t(1.0), t(gamma), t(alpha)
    classes = pred.shape[1]
    o = np.empty(classes, pred.dtype)
    d = np.empty(classes, pred.dtype)
    total_loss = 0.0
    for r in range(pred.shape[0]):
        w = _weight(row_weight, r, per_row)
        if from_logits:
            _log_softmax_row(pred, r, o)
            for c in range(classes):
                o[c] = np.exp(o[c])
            total = one
        else:
            total = t(0.0)
            for c in range(classes):
                total += pred[r, c]
            for c in range(classes):
                o[c] = pred[r, c] / total
        dot = t(0.0)
        for c in range(classes):
            y = true[r, c]
            oc = min(max(o[c], eps), one - eps)
            rest = one - o[c]
            factor = rest ** g
            nll = -np.log(oc)
            total_loss += w * a * y * factor * nll
            dfactor = -g * rest ** (g - one) if rest > 0 else t(0.0)
            if from_logits:
                dnll = -one / oc if eps < o[c] < one - eps else t(0.0)
            else:
                dnll = -one / max(o[c], eps)
            d[c] = a * y * (dfactor * nll + factor * dnll)
            dot += d[c] * o[c]
        for c in range(classes):
            if from_logits:
                grad[r, c] = o[c] * (d[c] - dot) * (w * s)
            else:
                grad[r, c] = (d[c] - dot) / total * (w * s)
    return total_loss


@njit(cache=True, error_model="numpy")
def huber(pred, true, scale, row_weight, per_row, grad, delta):
    """0.5 e^2 where |e| <= delta, else delta |e| - 0.5 delta^2 (e = pred - true); gradient e clipped to
    [-delta, delta]."""
    t = pred.dtype.type
    s, d, half = t(scale), t(delta), t(0.5)
    total_loss = 0.0
    for i in range(pred.shape[0]):
        w = _weight(row_weight, i, per_row)
        e = pred[i] - true[i]
        if abs(e) <= d:
            total_loss += w * half * e * e
            grad[i] = e * (w * s)
        else:
            total_loss += w * (d * abs(e) - half * d * d)
            grad[i] = (d if e > 0 else -d) * (w * s)
    return total_loss


@njit(cache=True, error_model="numpy")
def log_cosh(pred, true, scale, row_weight, per_row, grad):
    """log(cosh(e)) as Keras writes it, e + softplus(-2e) - log 2 (no overflow for large |e|); gradient tanh(e)."""
    t = pred.dtype.type
    s, two = t(scale), t(2.0)
    log2 = t(np.log(2.0))
    total_loss = 0.0
    for i in range(pred.shape[0]):
        w = _weight(row_weight, i, per_row)
        e = pred[i] - true[i]
        z = -two * e
        softplus = max(z, t(0.0)) + np.log1p(np.exp(-abs(z)))
        total_loss += w * (e + softplus - log2)
        grad[i] = np.tanh(e) * (w * s)
    return total_loss


@njit(cache=True, error_model="numpy")
def poisson(pred, true, scale, row_weight, per_row, grad):
    """pred - true log(pred + EPSILON); gradient 1 - true / (pred + EPSILON)."""
    t = pred.dtype.type
    s, eps, one = t(scale), t(EPSILON), t(1.0)
    total_loss = 0.0
    for i in range(pred.shape[0]):
        w = _weight(row_weight, i, per_row)
        total_loss += w * (pred[i] - true[i] * np.log(pred[i] + eps))
        grad[i] = (one - true[i] / (pred[i] + eps)) * (w * s)
    return total_loss


@njit(cache=True, error_model="numpy")
def hinge(pred, true, scale, row_weight, per_row, grad, power):
    """max(1 - t pred, 0) ** power (power 1: hinge, 2: squared hinge), targets already -1/1."""
    t = pred.dtype.type
    s, one = t(scale), t(1.0)
    total_loss = 0.0
    for i in range(pred.shape[0]):
        w = _weight(row_weight, i, per_row)
        margin = max(one - true[i] * pred[i], t(0.0))
        if power == 1:
            total_loss += w * margin
            grad[i] = -true[i] * (w * s) if margin > 0 else t(0.0)
        else:
            total_loss += w * margin * margin
            grad[i] = t(-2.0) * margin * true[i] * (w * s)
    return total_loss


@njit(cache=True, error_model="numpy")
def absolute_percentage_error(pred, true, scale, row_weight, per_row, grad):
    """100 |true - pred| / max(|true|, EPSILON); gradient 100 sign(pred - true) / max(|true|, EPSILON)."""
    t = pred.dtype.type
    s, eps, hundred = t(scale), t(EPSILON), t(100.0)
    total_loss = 0.0
    for i in range(pred.shape[0]):
        w = _weight(row_weight, i, per_row)
        e = pred[i] - true[i]
        denominator = max(abs(true[i]), eps)
        total_loss += w * hundred * abs(e) / denominator
        sign = t(1.0) if e > 0 else (t(-1.0) if e < 0 else t(0.0))
        grad[i] = hundred * sign / denominator * (w * s)
    return total_loss


@njit(cache=True, error_model="numpy")
def squared_logarithmic_error(pred, true, scale, row_weight, per_row, grad):
    """(log(max(pred, EPSILON) + 1) - log(max(true, EPSILON) + 1))^2; no gradient where pred is floored."""
    t = pred.dtype.type
    s, eps, one, two = t(scale), t(EPSILON), t(1.0), t(2.0)
    total_loss = 0.0
    for i in range(pred.shape[0]):
        w = _weight(row_weight, i, per_row)
        p = max(pred[i], eps)
        diff = np.log(p + one) - np.log(max(true[i], eps) + one)
        total_loss += w * diff * diff
        grad[i] = two * diff / (p + one) * (w * s) if pred[i] > eps else t(0.0)
    return total_loss


@njit(cache=True, error_model="numpy")
def kl_divergence(pred, true, scale, row_weight, per_row, grad):
    """sum_c t log(t / p) per row, t and p clipped to [EPSILON, 1]; gradient -t / p (clipping as the identity,
    p floored at EPSILON)."""
    t = pred.dtype.type
    s, eps, one = t(scale), t(EPSILON), t(1.0)
    total_loss = 0.0
    for r in range(pred.shape[0]):
        w = _weight(row_weight, r, per_row)
        for c in range(pred.shape[1]):
            y = min(max(true[r, c], eps), one)
            p = min(max(pred[r, c], eps), one)
            total_loss += w * y * np.log(y / p)
            grad[r, c] = -y / max(pred[r, c], eps) * (w * s)
    return total_loss


@njit(cache=True, error_model="numpy")
def categorical_hinge(pred, true, scale, row_weight, per_row, grad):
    """max(max_c (1 - t_c) p_c - sum_c t_c p_c + 1, 0) per row; its gradient flows to every class through the
    sum and to the first arg-max of the max."""
    t = pred.dtype.type
    s, one = t(scale), t(1.0)
    total_loss = 0.0
    for r in range(pred.shape[0]):
        w = _weight(row_weight, r, per_row)
        positive = t(0.0)
        top, top_at = -np.inf, 0
        for c in range(pred.shape[1]):
            positive += true[r, c] * pred[r, c]
            negative = (one - true[r, c]) * pred[r, c]
            if negative > top:
                top, top_at = negative, c
        loss = top - positive + one
        for c in range(pred.shape[1]):
            grad[r, c] = -true[r, c] * (w * s) if loss > 0 else t(0.0)
        if loss > 0:
            total_loss += w * loss
            grad[r, top_at] += (one - true[r, top_at]) * (w * s)
    return total_loss


@njit(cache=True, error_model="numpy")
def cosine_similarity(pred, true, scale, row_weight, per_row, grad):
    """-sum(t^ p^) per row, x^ = x / max(|x|, EPSILON) as Keras normalizes; gradient
    -(t^ - (t^.p^) p^) / |p| (-t^ / EPSILON where |p| is floored)."""
    t = pred.dtype.type
    s, eps = t(scale), t(EPSILON)
    total_loss = 0.0
    for r in range(pred.shape[0]):
        w = _weight(row_weight, r, per_row)
        pp, tt = t(0.0), t(0.0)
        for c in range(pred.shape[1]):
            pp += pred[r, c] * pred[r, c]
            tt += true[r, c] * true[r, c]
        p_norm, t_norm = max(np.sqrt(pp), eps), max(np.sqrt(tt), eps)
        cosine = t(0.0)
        for c in range(pred.shape[1]):
            cosine += true[r, c] / t_norm * pred[r, c] / p_norm
        total_loss -= w * cosine
        floored = np.sqrt(pp) <= eps
        for c in range(pred.shape[1]):
            along = t(0.0) if floored else cosine * pred[r, c] / p_norm
            grad[r, c] = -(true[r, c] / t_norm - along) / p_norm * (w * s)
    return total_loss
