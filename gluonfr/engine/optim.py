"""Optimiser side of training: weight-decay groups, the lr schedule, and optimiser state files.

Optimiser states (momentum buffers, Adam moments, float32 master weights) are written with
``mx.nd.save`` as a flat ``{"<param index>/<slot>": NDArray}`` dict, not with
``Trainer.save_states`` (a pickle of the whole optimiser): loading them never unpickles anything.
"""
import math
import re

import mxnet as mx
from gluoncv.utils import LRScheduler, LRSequential

__all__ = ["NO_WD_PATTERN", "set_wd_mult", "make_lr_scheduler", "make_optimizer",
           "save_optimizer_states", "load_optimizer_states", "set_num_update",
           "clip_global_norm", "loss_scaler_state", "restore_loss_scaler", "count_skipped_update"]

# BatchNorm scale/shift, biases and PReLU slopes (gluon names the slope "alpha")
NO_WD_PATTERN = r".*(_gamma|_beta|_bias|_alpha)$"


def set_wd_mult(backbone_params, head_params, no_wd=False, head_wd_mult=1.0, head_lr_mult=1.0):
    """Set ``wd_mult`` (and the head's ``lr_mult``) on parameters before the ``Trainer`` is built.

    Parameters
    ----------
    backbone_params, head_params : ParameterDict
        Parameters of the embedding network and of the classifier head.
    no_wd : bool
        Turn weight decay off on BatchNorm gamma/beta, biases and PReLU slopes.
    head_wd_mult : float
        Multiplier of the head's weight matrices (the class centres).
    head_lr_mult : float
        Learning-rate multiplier of the head's weight matrices (insightface's ``fc7_lr_mult``).

    Returns
    -------
    dict
        ``{parameter name: wd_mult}`` for every parameter whose multiplier is not 1.
    """
    changed = {}
    for is_head, params in ((False, backbone_params), (True, head_params)):
        for name, p in params.items():
            mult = 1.0
            if no_wd and re.match(NO_WD_PATTERN, name):
                mult = 0.0
            elif is_head and name.endswith("weight"):
                mult = float(head_wd_mult)
            p.wd_mult = mult
            if mult != 1.0:
                changed[name] = mult
            p.lr_mult = float(head_lr_mult) if is_head and name.endswith("weight") else 1.0
    return changed


def make_lr_scheduler(mode, base_lr, max_iters, warmup_iters=0, warmup_lr=0.0, steps=(),
                      factor=0.1, power=2.0, target_lr=0.0):
    """GluonCV's iteration-based schedule: linear warmup, then step / cosine / poly.

    The schedule is a pure function of the optimiser's ``num_update``, so restoring that
    counter restores the lr exactly on resume.

    Parameters
    ----------
    mode : {'step', 'cosine', 'poly'}
    base_lr : float
    max_iters : int
        Total iterations, warmup included.
    warmup_iters : int
        Linear ramp from ``warmup_lr`` to ``base_lr``.
    steps : sequence of int
        Absolute iterations where ``step`` multiplies the lr by ``factor``.
    power : float
        Exponent of ``poly``.
    target_lr : float
        End value of ``cosine`` / ``poly``.

    Returns
    -------
    gluoncv.utils.LRSequential
    """
    if mode not in ("step", "cosine", "poly"):
        raise ValueError(f"lr mode {mode!r}: expected step, cosine or poly")
    if max_iters <= warmup_iters:
        raise ValueError(f"max_iters={max_iters} must exceed warmup_iters={warmup_iters}")
    parts = []
    if warmup_iters > 0:
        # GluonCV divides by niters - 1: a one-iteration phase is a constant
        parts.append(LRScheduler("linear" if warmup_iters > 1 else "constant",
                                 base_lr=warmup_lr, target_lr=base_lr, niters=warmup_iters))
    rest = max_iters - warmup_iters
    if rest == 1:
        parts.append(LRScheduler("constant", base_lr=base_lr, niters=1))
    elif mode == "step":
        # GluonCV counts steps from the end of the warmup; ours are absolute iterations
        rel = [int(s) - warmup_iters for s in steps]
        parts.append(LRScheduler("step", base_lr=base_lr, niters=rest, step_iter=rel,
                                 step_factor=factor))
    else:
        parts.append(LRScheduler(mode, base_lr=base_lr, target_lr=target_lr, niters=rest,
                                 power=power))
    schedule = LRSequential(parts)
    schedule.base_lr = base_lr  # what mx.optimizer compares with its learning_rate
    return schedule


def make_optimizer(name, lr, wd, momentum=0.9, lr_scheduler=None, multi_precision=False):
    """``mx.optimizer.create`` with momentum passed only to optimisers that take it."""
    kwargs = dict(learning_rate=lr, wd=wd, lr_scheduler=lr_scheduler,
                  multi_precision=multi_precision)
    if name.lower() in ("sgd", "nag", "signum", "lbsgd"):
        kwargs["momentum"] = momentum
    try:
        return mx.optimizer.create(name, **kwargs)
    except (ValueError, KeyError, mx.MXNetError) as err:
        raise ValueError(f"optimizer {name!r}: {err}") from None


def _flatten(state, key, out):
    if state is None:
        return
    if isinstance(state, (list, tuple)):
        for i, s in enumerate(state):
            _flatten(s, f"{key}/{i}", out)
    else:
        out[key] = state.as_in_context(mx.cpu())


def _fill(state, key, saved, used):
    if state is None:
        return
    if isinstance(state, (list, tuple)):
        for i, s in enumerate(state):
            _fill(s, f"{key}/{i}", saved, used)
        return
    if key not in saved:
        raise ValueError(f"optimizer state {key!r} is missing from the states file "
                         "(was it written by another optimizer or network?)")
    src = saved[key]
    if src.shape != state.shape:
        raise ValueError(f"optimizer state {key!r} has shape {src.shape}, "
                         f"expected {state.shape}")
    src.astype(state.dtype).copyto(state)
    used.add(key)


def save_optimizer_states(trainer, path):
    """Write the trainer's optimiser states to ``path`` (``mx.nd.save`` format).

    Every device holds the same states after an all-reduced step, so the first device's are
    saved. Parameters not yet updated have no state and are skipped.
    """
    updater = trainer._updaters[0]
    arrays = {}
    for index, state in updater.states.items():
        _flatten(state, str(index), arrays)
    mx.nd.save(path, arrays)


def load_optimizer_states(trainer, path):
    """Load :func:`save_optimizer_states` output into every device's updater."""
    saved = mx.nd.load(path)
    if isinstance(saved, list) and not saved:
        saved = {}  # written before any update (mx.nd.save of an empty dict reads as [])
    if not isinstance(saved, dict):
        raise ValueError(f"{path}: expected a dict of optimizer states")
    optimizer = trainer._optimizer
    indices = sorted({int(k.split("/")[0]) for k in saved})
    used = set()
    params = trainer._params
    for index in indices:
        if index >= len(params):
            raise ValueError(f"{path}: state for parameter #{index}, but the trainer has "
                             f"{len(params)} parameters")
    for updater, ctx_index in zip(trainer._updaters, range(len(trainer._updaters))):
        used = set()
        for index in indices:
            weight = params[index].list_data()[ctx_index]
            state = optimizer.create_state_multi_precision(index, weight)
            _fill(state, str(index), saved, used)
            updater.states[index] = state
            updater.states_synced[index] = True
    unused = sorted(set(saved) - used)
    if unused:
        raise ValueError(f"{path}: states {unused[:5]} do not fit this optimizer")


def set_num_update(optimizer, num_update):
    """Restart the optimiser's update counters at ``num_update`` (resume).

    The lr schedule reads ``num_update``; Adam-style bias corrections read the per-parameter
    counts, which all equal the iteration because every parameter is updated every step.
    """
    optimizer.begin_num_update = int(num_update)
    optimizer.num_update = int(num_update)
    optimizer._all_index_update_counts = {0: {}}
    optimizer._index_update_count = optimizer._all_index_update_counts[0]


def clip_global_norm(params, max_norm, batch_size):
    """Scale all gradients so the gradient of the mean loss has global L2 norm <= ``max_norm``.

    The loop's losses are per-sample sums and the optimiser divides by the batch size
    (``rescale_grad``), so the norm that matters is ``||g|| / batch_size``; it is taken over
    every trainable parameter together, on the first device (after the all-reduce every
    device holds the same sums). Returns that norm (a host float: one device sync).

    Parameters
    ----------
    params : list of Parameter
    max_norm : float
    batch_size : int
        The global batch the update divides by.
    """
    grads = [p.list_grad() for p in params if p.grad_req != "null" and p._grad is not None]
    if not grads:
        return 0.0
    first = [g[0] for g in grads]
    sq = mx.nd.add_n(*[mx.nd.sum(mx.nd.square(g.astype("float32"))).as_in_context(
        first[0].context) for g in first])
    norm = float(mx.nd.sqrt(sq).asscalar()) / float(batch_size)
    if norm > max_norm and math.isfinite(norm):  # inf / NaN are left to the NaN checks
        scale = max_norm / norm
        for per_device in grads:
            for g in per_device:
                g *= scale
    return norm


def loss_scaler_state(trainer):
    """The dynamic loss scaler's state (AMP), or ``None`` when the trainer has none.

    MXNet keeps it in private attributes of ``trainer._amp_loss_scaler``; a resumed run
    that starts again at 2**16 would re-learn the scale with a burst of skipped steps.
    """
    scaler = getattr(trainer, "_amp_loss_scaler", None)
    if scaler is None:
        return None
    return {"loss_scale": float(scaler._loss_scale),
            "next_loss_scale": float(scaler._next_loss_scale),
            "unskipped": int(scaler._unskipped)}


def restore_loss_scaler(trainer, state):
    """Put a :func:`loss_scaler_state` back (no-op without a scaler or a saved state)."""
    scaler = getattr(trainer, "_amp_loss_scaler", None)
    if scaler is None or not state:
        return
    scaler._loss_scale = float(state["loss_scale"])
    scaler._next_loss_scale = float(state["next_loss_scale"])
    scaler._unskipped = int(state["unskipped"])


def count_skipped_update(optimizer):
    """Advance the update counters for a step the loss scaler skipped (overflow).

    MXNet skips the update without counting it, so ``num_update`` (which drives the lr
    schedule) would fall behind the iteration and a resumed run, restarted at the
    iteration, would jump ahead in the schedule. Counting it keeps both in step; the
    per-parameter counts (Adam's bias correction) advance alike.
    """
    optimizer.num_update += 1
    for counts in optimizer._all_index_update_counts.values():
        for index in counts:
            counts[index] += 1
