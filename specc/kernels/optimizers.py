"""Optimizer updates, each one pass over all trainable weights held in one flat array (Keras 3 formulas),
and the gradient clipping and weight decay that come before them.

Hyper-parameters are cast to the weights' dtype so float32 weights are updated in float32 arithmetic,
which vectorizes; error_model="numpy" drops the division-by-zero checks that would prevent it.
"""
import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy")
def clip_by_norm(g, bounds, clipnorm):
    """Each weight array's gradient g[bounds[k]:bounds[k+1]] scaled by clipnorm / max(||g_k||, clipnorm),
    as Keras clips every variable's gradient by its own norm."""
    t = g.dtype.type
    limit = t(clipnorm)
    for k in range(bounds.shape[0] - 1):
        squares = 0.0
        for i in range(bounds[k], bounds[k + 1]):
            squares += g[i] * g[i]
        norm = t(np.sqrt(squares))
        if norm > limit:
            for i in range(bounds[k], bounds[k + 1]):
                g[i] = g[i] * limit / norm


@njit(cache=True, error_model="numpy")
def decay_weights(w, learning_rate, weight_decay):
    """Decoupled weight decay before the update: w -= w * weight_decay * learning_rate."""
    t = w.dtype.type
    wd, lr = t(weight_decay), t(learning_rate)
    for i in range(w.shape[0]):
        w[i] -= w[i] * wd * lr


@njit(cache=True, error_model="numpy")
def sgd_update(w, g, velocity, learning_rate, momentum, nesterov):
    """velocity = momentum * velocity - lr * g; w += velocity (nesterov: w += momentum * velocity - lr * g)."""
    t = w.dtype.type
    lr, mu = t(learning_rate), t(momentum)
    if momentum == 0.0:
        for i in range(w.shape[0]):
            w[i] -= lr * g[i]
        return
    for i in range(w.shape[0]):
        velocity[i] = mu * velocity[i] - lr * g[i]
        if nesterov:
            w[i] += mu * velocity[i] - lr * g[i]
        else:
            w[i] += velocity[i]


@njit(cache=True, error_model="numpy")
def rmsprop_update(w, g, mean_square, mean_grad, velocity, learning_rate, rho, momentum, epsilon, centered):
    """mean_square = rho * mean_square + (1 - rho) g^2 (centered: minus mean_grad^2, itself a moving mean of g);
    step = lr g / sqrt(mean_square + eps); with momentum velocity = momentum * velocity + step; w -= it."""
    t = w.dtype.type
    lr, r, mu, eps = t(learning_rate), t(rho), t(momentum), t(epsilon)
    keep = t(1.0) - r
    for i in range(w.shape[0]):
        mean_square[i] = r * mean_square[i] + keep * g[i] * g[i]
        denominator = mean_square[i]
        if centered:
            mean_grad[i] = r * mean_grad[i] + keep * g[i]
            denominator -= mean_grad[i] * mean_grad[i]
        step = lr * g[i] / np.sqrt(denominator + eps)
        if momentum > 0.0:
            velocity[i] = mu * velocity[i] + step
            w[i] -= velocity[i]
        else:
            w[i] -= step


@njit(cache=True, error_model="numpy")
def adam_update(w, g, m, v, v_max, step_size, beta_1, beta_2, epsilon, amsgrad):
    """m += (g - m)(1 - beta_1); v += (g^2 - v)(1 - beta_2); with amsgrad v_max = max(v_max, v) is used for v;
    w -= step_size * m / (sqrt(v) + eps), step_size the bias-corrected rate lr sqrt(1 - beta_2^t) / (1 - beta_1^t)."""
    t = w.dtype.type
    alpha, eps = t(step_size), t(epsilon)
    keep_1, keep_2 = t(1.0) - t(beta_1), t(1.0) - t(beta_2)
    for i in range(w.shape[0]):
        m[i] += (g[i] - m[i]) * keep_1
        v[i] += (g[i] * g[i] - v[i]) * keep_2
        second = v[i]
        if amsgrad:
            v_max[i] = max(v_max[i], v[i])
            second = v_max[i]
        w[i] -= alpha * m[i] / (np.sqrt(second) + eps)


@njit(cache=True, error_model="numpy")
def adagrad_update(w, g, accumulator, learning_rate, epsilon):
    """accumulator += g^2; w -= lr g / sqrt(accumulator + eps)."""
    t = w.dtype.type
    lr, eps = t(learning_rate), t(epsilon)
    for i in range(w.shape[0]):
        accumulator[i] += g[i] * g[i]
        w[i] -= lr * g[i] / np.sqrt(accumulator[i] + eps)


@njit(cache=True, error_model="numpy")
def adadelta_update(w, g, accumulated_grad, accumulated_delta, learning_rate, rho, epsilon):
    """accumulated_grad = rho a_g + (1 - rho) g^2; delta = -sqrt(a_d + eps) g / sqrt(a_g + eps);
    accumulated_delta = rho a_d + (1 - rho) delta^2; w += lr delta."""
    t = w.dtype.type
    lr, r, eps = t(learning_rate), t(rho), t(epsilon)
    keep = t(1.0) - r
    for i in range(w.shape[0]):
        accumulated_grad[i] = r * accumulated_grad[i] + keep * g[i] * g[i]
        delta = -(np.sqrt(accumulated_delta[i] + eps) * g[i]) / np.sqrt(accumulated_grad[i] + eps)
        accumulated_delta[i] = r * accumulated_delta[i] + keep * delta * delta
        w[i] += lr * delta


@njit(cache=True, error_model="numpy")
def adamax_update(w, g, m, norm, learning_rate, beta_1, beta_2, epsilon, bias_correction):
    """m += (g - m)(1 - beta_1); norm = max(beta_2 norm, |g|); w -= lr m / ((1 - beta_1^t)(norm + eps)),
    bias_correction being 1 - beta_1^t."""
    t = w.dtype.type
    lr, b2, eps, correction = t(learning_rate), t(beta_2), t(epsilon), t(bias_correction)
    keep_1 = t(1.0) - t(beta_1)
    for i in range(w.shape[0]):
        m[i] += (g[i] - m[i]) * keep_1
        norm[i] = max(b2 * norm[i], abs(g[i]))
        w[i] -= lr * m[i] / (correction * (norm[i] + eps))


@njit(cache=True, error_model="numpy")
def nadam_update(w, g, m, v, learning_rate, beta_1, beta_2, epsilon, momentum_weight, gradient_weight, v_scale):
    """m += (g - m)(1 - beta_1); v += (g^2 - v)(1 - beta_2); m_hat = momentum_weight m + gradient_weight g;
    w -= lr m_hat / (sqrt(v_scale v) + eps). The weights are Keras' u_{t+1} / (1 - prod_{s<=t+1} u_s) and
    (1 - u_t) / (1 - prod_{s<=t} u_s), u_s = beta_1 (1 - 0.96^s / 2); v_scale = 1 / (1 - beta_2^t)."""
    t = w.dtype.type
    lr, eps = t(learning_rate), t(epsilon)
    keep_1, keep_2 = t(1.0) - t(beta_1), t(1.0) - t(beta_2)
    a, b, c = t(momentum_weight), t(gradient_weight), t(v_scale)
    for i in range(w.shape[0]):
        m[i] += (g[i] - m[i]) * keep_1
        v[i] += (g[i] * g[i] - v[i]) * keep_2
        w[i] -= lr * (a * m[i] + b * g[i]) / (np.sqrt(v[i] * c) + eps)


@njit(cache=True, error_model="numpy")
def lion_update(w, g, m, learning_rate, beta_1, beta_2):
    """w -= lr sign(beta_1 m + (1 - beta_1) g); then m = beta_2 m + (1 - beta_2) g."""
    t = w.dtype.type
    lr, b1, b2 = t(learning_rate), t(beta_1), t(beta_2)
    keep_1, keep_2 = t(1.0) - b1, t(1.0) - b2
    for i in range(w.shape[0]):
        w[i] -= lr * np.sign(m[i] * b1 + g[i] * keep_1)
        m[i] = m[i] * b2 + g[i] * keep_2


@njit(cache=True, error_model="numpy")
def ftrl_update(w, g, accumulator, linear, learning_rate, learning_rate_power, l1, l2, l2_shrinkage):
    """FTRL-proximal (Keras' form), p = -learning_rate_power, l2 already holding beta / (2 lr):
    n' = n + g^2; linear += g + 2 l2_shrinkage w - (n'^p - n^p) / lr * w;
    w = (clip(linear, -l1, l1) - linear) / (n'^p / lr + 2 l2); n = n'."""
    t = w.dtype.type
    lr, p, l1_, l2_, shrink = t(learning_rate), t(-learning_rate_power), t(l1), t(l2), t(l2_shrinkage)
    two = t(2.0)
    for i in range(w.shape[0]):
        new_accumulator = accumulator[i] + g[i] * g[i]
        raised = new_accumulator ** p
        linear[i] += g[i] + two * shrink * w[i] - (raised - accumulator[i] ** p) / lr * w[i]
        quadratic = raised / lr + two * l2_
        w[i] = (min(max(linear[i], -l1_), l1_) - linear[i]) / quadratic
        accumulator[i] = new_accumulator
