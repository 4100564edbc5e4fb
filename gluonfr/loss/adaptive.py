"""Heads whose scale or margin adapts: AdaCos (scale), AdaFace and MagFace (feature norm).

AdaFace and MagFace take the unnormalised embedding norms as a third input,
``loss(cos, label, norms)`` (their ``needs = ("norms",)``; the training engine passes them).
With these heads the norm of an embedding is a quality score
(``FaceEmbedder.embed(..., return_norm=True)``).
"""
import math

from .base import SoftmaxHeadLoss, StatefulHeadLoss, stop_gradient
from .labels import guard_labels
from .margin import _arccos, _check_finite, _replace_target, _sin_theta, _target_mask
from .registry import register_loss

__all__ = ["AdaCosLoss", "AdaFaceLoss", "MagFaceLoss"]


@register_loss(name="adacos")
class AdaCosLoss(StatefulHeadLoss):
    r"""Dynamic AdaCos (Zhang et al., CVPR 2019): no margin, the scale adapts per batch.

    Logits ``s*cos(theta_j)``. The scale starts at ``sqrt(2)*log(C - 1)`` (the paper's fixed
    AdaCos) and each training call first sets ``s <- log(B) / cos(min(pi/4, theta_med))``
    with ``B = (1/N) sum_i sum_{j != y_i} exp(s_old*cos(theta_ij))`` and ``theta_med`` the
    median target angle of the batch (the lower middle value for an even batch), then uses
    the new ``s`` (no gradient through it).

    Parameters
    ----------
    classes : int
        C, for the initial scale.
    **kwargs
        ``return_logits``, ``check_label``, ``fast_backward``, ``weight``.

    State: ``s``.
    """

    def __init__(self, classes, **kwargs):
        super().__init__(**kwargs)
        if int(classes) < 3:
            raise ValueError(f"AdaCosLoss: needs classes >= 3, got {classes!r}")
        self._classes = int(classes)
        self._make_states({"s": math.sqrt(2.0) * math.log(self._classes - 1)})

    def _num_classes(self, data):
        return self._classes

    def hybrid_forward(self, F, cos_logits, label, *args, s=None):
        _, update, sample_weight = self._split_inputs(args)
        cos = self._to_compute_dtype(F, cos_logits)
        index, valid, _ = guard_labels(F, label, cos)
        s_old = stop_gradient(F, self._in_compute_dtype(F, s))
        c = stop_gradient(F, F.clip(F.pick(cos, index, axis=-1), -1.0, 1.0))
        # log B by log-sum-exp over the non-target entries (exp(s*cos) overflows no float)
        z = F.broadcast_mul(stop_gradient(F, cos), F.reshape(s_old, shape=(1, 1)))
        z = F.where(_target_mask(F, cos, index), F.ones_like(z) * -1e30, z)
        zmax = F.max(z)
        count = F.sum(F.ones_like(c))
        log_b = F.log(F.sum(F.exp(F.broadcast_sub(z, zmax)))) + zmax - F.log(count)
        theta = F.sort(_arccos(F, c))
        mid = F.floor((F.cast(F.shape_array(theta), "float32") - 1) / 2)
        theta_med = F.take(theta, mid)
        s_fit = log_b / F.cos(F.minimum(theta_med, F.ones_like(theta_med) * (math.pi / 4)))
        u = self._in_compute_dtype(F, F.reshape(update, shape=(1,)))
        s_new = stop_gradient(F, s_old + u * (s_fit - s_old))
        logits = F.broadcast_mul(cos, F.reshape(s_new, shape=(1, 1)))
        return self._finish(F, logits, index, valid, sample_weight, [s_new])

    def __repr__(self):
        return f"AdaCosLoss(classes={self._classes})"


@register_loss(name="adaface")
class AdaFaceLoss(StatefulHeadLoss):
    r"""AdaFace (Kim et al., CVPR 2022): a margin that follows the feature-norm quality.

    With the norms ``n_i`` clipped to [0.001, 100] (no gradient), each training call first
    updates the running statistics ``mu <- a*mean(n) + (1-a)*mu``,
    ``sigma <- a*std(n) + (1-a)*sigma`` (``std`` with ddof 1, ``a = t_alpha``), then
    ``z_i = clip(h*(n_i - mu)/(sigma + 0.001), -1, 1)`` and the target logit is
    ``s*(cos(clip(theta_y - m*z_i, 0.001, pi - 0.001)) - (m + m*z_i))``: angular margin for
    low-norm (hard, low-quality) images, additive cosine margin for high-norm ones. Other
    logits ``s*cos(theta_j)``. ``mu``, ``sigma`` start at 20 and 100 (the authors' code).

    Parameters
    ----------
    s : float, default 64.0
    m : float, default 0.4
    h : float, default 0.333
    t_alpha : float, default 0.01
    **kwargs
        ``return_logits``, ``check_label``, ``fast_backward``, ``weight``.

    Inputs: ``cos`` (N, C), ``label`` (N,), ``norms`` (N,). State: ``batch_mean``,
    ``batch_std``.
    """

    needs = ("norms",)

    def __init__(self, s=64.0, m=0.4, h=0.333, t_alpha=0.01, **kwargs):
        super().__init__(**kwargs)
        s, m, h, t_alpha = map(float, (s, m, h, t_alpha))
        _check_finite("AdaFaceLoss", s=s, m=m, h=h, t_alpha=t_alpha)
        if s <= 0 or not 0 <= t_alpha <= 1:
            raise ValueError(f"AdaFaceLoss: needs s > 0 and 0 <= t_alpha <= 1, got s={s}, "
                             f"t_alpha={t_alpha}")
        self._s, self._m, self._h, self._t_alpha = s, m, h, t_alpha
        self._make_states({"batch_mean": 20.0, "batch_std": 100.0})

    def hybrid_forward(self, F, cos_logits, label, *args, batch_mean=None, batch_std=None):
        (norms,), update, sample_weight = self._split_inputs(args)
        cos = self._to_compute_dtype(F, cos_logits)
        index, valid, num_classes = guard_labels(F, label, cos)
        n = stop_gradient(F, F.clip(self._in_compute_dtype(F, F.reshape(norms, shape=(-1,))),
                               0.001, 100.0))
        batch_mean = self._in_compute_dtype(F, batch_mean)
        batch_std = self._in_compute_dtype(F, batch_std)
        count = F.sum(F.ones_like(n))
        mean = F.sum(n) / count
        std = F.sqrt(F.sum(F.square(F.broadcast_sub(n, mean)))
                    / F.maximum(count - 1, F.ones_like(count)))
        a = self._in_compute_dtype(F, F.reshape(update, shape=(1,))) * self._t_alpha
        mu = stop_gradient(F, batch_mean + a * (mean - batch_mean))
        sigma = stop_gradient(F, batch_std + a * (std - batch_std))
        z = F.clip(F.broadcast_div(F.broadcast_sub(n, mu), sigma + 0.001) * self._h, -1.0, 1.0)
        c = F.clip(F.pick(cos, index, axis=-1), -1.0, 1.0)
        theta = F.clip(_arccos(F, c) - self._m * z, 0.001, math.pi - 0.001)
        target = (F.cos(theta) - (self._m + self._m * z)) * self._s
        logits = _replace_target(F, cos * self._s, target, index, num_classes)
        return self._finish(F, logits, index, valid, sample_weight, [mu, sigma])

    def __repr__(self):
        return (f"AdaFaceLoss(s={self._s}, m={self._m}, h={self._h}, "
                f"t_alpha={self._t_alpha})")


@register_loss(name="magface")
class MagFaceLoss(SoftmaxHeadLoss):
    r"""MagFace (Meng et al., CVPR 2021): margin and regulariser grow with the feature norm.

    ``a = clip(norm, l_a, u_a)``; margin ``m(a) = l_m + (u_m - l_m)*(a - l_a)/(u_a - l_a)``;
    target logit as ArcFace with that per-sample margin (``s*cos(theta_y + m(a))``, or
    ``s*(cos(theta_y) - sin(pi - m(a))*m(a))`` once ``cos(theta_y) <= cos(pi - m(a))``);
    the per-sample loss is the cross-entropy plus ``lambda_g*g(a)``,
    ``g(a) = a/u_a^2 + 1/a``. Gradients reach the norm through ``m(a)`` and ``g(a)``
    (zero outside ``[l_a, u_a]``), which is what makes the norm a quality score.

    Parameters
    ----------
    s : float, default 64.0
    l_a, u_a : float, default 10, 110
    l_m, u_m : float, default 0.45, 0.8
    lambda_g : float, default 20.0
    **kwargs
        ``return_logits``, ``check_label``, ``fast_backward``, ``weight``.

    Inputs: ``cos`` (N, C), ``label`` (N,), ``norms`` (N,).
    """

    needs = ("norms",)

    def __init__(self, s=64.0, l_a=10.0, u_a=110.0, l_m=0.45, u_m=0.8, lambda_g=20.0,
                 **kwargs):
        super().__init__(**kwargs)
        vals = dict(s=float(s), l_a=float(l_a), u_a=float(u_a), l_m=float(l_m),
                    u_m=float(u_m), lambda_g=float(lambda_g))
        _check_finite("MagFaceLoss", **vals)
        if not (vals["s"] > 0 and 0 < vals["l_a"] < vals["u_a"]
                and 0 <= vals["l_m"] <= vals["u_m"] < math.pi / 2):
            raise ValueError(f"MagFaceLoss: needs s > 0, 0 < l_a < u_a and 0 <= l_m <= u_m < "
                             f"pi/2; got {vals}")
        self._v = vals

    def hybrid_forward(self, F, cos_logits, label, norms, sample_weight=None):
        v = self._v
        cos = self._to_compute_dtype(F, cos_logits)
        index, valid, num_classes = guard_labels(F, label, cos)
        a = F.clip(self._in_compute_dtype(F, F.reshape(norms, shape=(-1,))), v["l_a"], v["u_a"])
        m = (a - v["l_a"]) * ((v["u_m"] - v["l_m"]) / (v["u_a"] - v["l_a"])) + v["l_m"]
        c = F.clip(F.pick(cos, index, axis=-1), -1.0, 1.0)
        phi = c * F.cos(m) - _sin_theta(F, c) * F.sin(m)
        target = F.where(c > F.cos(math.pi - m), phi, c - F.sin(math.pi - m) * m)
        logits = _replace_target(F, cos * v["s"], target * v["s"], index, num_classes)
        out = self._cross_entropy(F, logits, index, valid, None)
        loss, rest = (out[0], out[1:]) if isinstance(out, tuple) else (out, ())
        reg = a / (v["u_a"] ** 2) + 1.0 / a
        reg = reg * self._weight if self._weight is not None else reg
        loss = loss + reg * v["lambda_g"]
        if sample_weight is not None:
            loss = F.broadcast_mul(loss, F.reshape(sample_weight, shape=(-1,)))
        return (loss,) + tuple(rest) if rest else loss

    def __repr__(self):
        v = self._v
        return (f"MagFaceLoss(s={v['s']}, l_a={v['l_a']}, u_a={v['u_a']}, l_m={v['l_m']}, "
                f"u_m={v['u_m']}, lambda_g={v['lambda_g']})")
