"""Callbacks of the training loop: logging, verification and checkpoints.

A callback sees the running :class:`~gluonfr.engine.loop.TrainLoop` after every iteration and
decides itself whether to act (``iteration % interval``). Only these callbacks bring values to
the host, so the loop itself never waits for the devices between log intervals.
"""
import logging
import os
import time

import numpy as np
from tqdm import tqdm

__all__ = ["Callback", "LogCallback", "VerificationCallback", "CheckpointCallback",
           "make_summary_writer", "setup_logger", "TqdmHandler"]


class Callback:
    """Hooks called by the training loop; override the ones you need."""

    def on_train_begin(self, loop):
        pass

    def on_iteration_end(self, loop):
        pass

    def on_train_end(self, loop):
        pass


def _due(loop, interval):
    """Whether a periodic action runs after the current iteration (always after the last)."""
    it = loop.iteration
    return interval > 0 and (it % interval == 0 or it == loop.max_iters)


# -- logging --------------------------------------------------------------------------------------
class TqdmHandler(logging.StreamHandler):
    """A console handler that prints above an active tqdm bar instead of through it."""

    def emit(self, record):
        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 - logging must never kill training
            self.handleError(record)


def setup_logger(log_file=None, console=True, name="gluonfr.train"):
    """The training logger: ``log_file`` (appended, so resumed runs continue it) and console."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    fmt = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S")
    if log_file:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        fh = logging.FileHandler(log_file, encoding="utf-8")
        fh.setFormatter(fmt)
        logger.addHandler(fh)
    if console:
        ch = TqdmHandler()
        ch.setFormatter(fmt)
        logger.addHandler(ch)
    return logger


def make_summary_writer(logdir):
    """A TensorBoard ``SummaryWriter``: tensorboardX, else mxboard if that is what is installed.

    Returns ``None`` (with a warning) when neither imports, so training never depends on it.
    """
    if not logdir:
        return None
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        try:
            from mxboard import SummaryWriter
        except ImportError:
            logging.getLogger("gluonfr.train").warning(
                "neither tensorboardX nor mxboard is installed: no TensorBoard logs "
                "(pip install 'gluonfr[viz]')")
            return None
    os.makedirs(logdir, exist_ok=True)
    return SummaryWriter(logdir=logdir)


class LogCallback(Callback):
    """Every ``interval`` iterations: loss, training accuracy, samples/s and lr.

    They go to the log file, the console (a tqdm bar between log lines) and TensorBoard. This
    is where the per-iteration sums kept on the devices are brought to the host, which also
    checks every iteration's loss for NaN / inf.
    """

    def __init__(self, interval, progress=True):
        self.interval = int(interval)
        self.progress = progress
        self.pbar = None

    def on_train_begin(self, loop):
        self._tick = time.time()
        self._tick_iter = loop.iteration
        if self.progress and loop.is_chief:
            self.pbar = tqdm(total=loop.max_iters, initial=loop.iteration, desc="train",
                             unit="it", dynamic_ncols=True, leave=False,
                             disable=None)  # None: no bar when stderr is not a terminal

    def on_iteration_end(self, loop):
        if self.pbar is not None:
            self.pbar.update(1)
        if not _due(loop, self.interval):
            return
        stats = loop.sync_metrics()  # raises NonFiniteLossError
        now = time.time()
        iters = loop.iteration - self._tick_iter
        speed = iters * loop.global_batch / max(now - self._tick, 1e-9)
        self._tick, self._tick_iter = now, loop.iteration
        lr = loop.learning_rate
        head = loop.head_stats()
        extra = "" if head is None else (
            f" sampled {head['sampled_classes']} classes head "
            f"{head['head_bytes'] / 2 ** 20:.3g} MiB")
        loop.logger.info(
            f"iter {loop.iteration}/{loop.max_iters} epoch {loop.epoch} "
            f"loss {stats['loss']:.4f} acc {stats['accuracy']:.4f} "
            f"speed {speed:.1f} samples/s lr {lr:.6g} [{loop.loss_name}]{extra}")
        if self.pbar is not None:
            self.pbar.set_postfix(loss=f"{stats['loss']:.3f}", acc=f"{stats['accuracy']:.3f}",
                                  sps=f"{speed:.1f}", lr=f"{lr:.3g}", refresh=False)
        w = loop.writer
        if w is not None:
            w.add_scalar("train/loss", stats["loss"], loop.iteration)
            w.add_scalar("train/accuracy", stats["accuracy"], loop.iteration)
            w.add_scalar("train/samples_per_sec", speed, loop.iteration)
            w.add_scalar("train/lr", lr, loop.iteration)
            for key, value in (head or {}).items():
                w.add_scalar(f"train/{key}", value, loop.iteration)
        loop.last_stats = dict(stats, speed=speed, lr=lr, iteration=loop.iteration,
                               **(head or {}))

    def on_train_end(self, loop):
        if self.pbar is not None:
            self.pbar.close()
            self.pbar = None


class VerificationCallback(Callback):
    """Every ``interval`` iterations: verification accuracy on each target ``.bin``.

    Parameters
    ----------
    interval : int
    targets : dict
        ``{name: (images, issame)}`` as returned by :func:`gluonfr.data.load_bin`.
    batch_size : int
    flip : bool
        Flip-sum embeddings (insightface's Accuracy-Flip).

    Notes
    -----
    The best accuracy of each target is tracked in ``loop.best_val`` and the best mean in
    ``loop.best_score`` (run state, saved in checkpoints). Other callbacks get the result of
    the current iteration from :meth:`result_for` (the checkpoint callback uses ``new_best``
    to keep the best checkpoint).
    """

    def __init__(self, interval, targets, batch_size=64, flip=True):
        self.interval = int(interval)
        self.targets = targets
        self.batch_size = int(batch_size)
        self.flip = flip
        self._result = (None, None)  # (iteration, its result or None)

    def on_iteration_end(self, loop):
        self.result_for(loop)

    def result_for(self, loop):
        """The verification of ``loop.iteration``, run at most once per iteration.

        Returns
        -------
        dict or None
            ``iteration``, ``accuracy`` (per target), ``mean`` and ``new_best`` (the mean beat
            every earlier one), or ``None`` when verification is not due at this iteration
            (or there is nothing to verify, or this worker is not the chief).
        """
        done_at, result = self._result
        if done_at == loop.iteration:
            return result
        result = None
        if self.targets and loop.is_chief and _due(loop, self.interval):
            result = self._verify(loop)
        self._result = (loop.iteration, result)
        return result

    def _verify(self, loop):
        from ..metrics import evaluate_targets

        t0 = time.time()
        results = evaluate_targets(loop.backbone, self.targets, ctx=loop.ctx,
                                   batch_size=self.batch_size, flip=self.flip,
                                   progress=loop.cfg.progress)
        accs, stds = {}, {}
        for name, res in results.items():
            acc, std = float(res["accuracy"]), float(res["accuracy_std"])
            stds[name] = std
            noflip = (f", no-flip {res['noflip']['accuracy']:.5f}" if "noflip" in res else "")
            accs[name] = acc
            best = loop.best_val.get(name)
            if best is None or acc > best["accuracy"]:
                loop.best_val[name] = {"accuracy": acc, "iteration": loop.iteration}
            loop.logger.info(
                f"[{name}] iter {loop.iteration} accuracy{'-flip' if self.flip else ''} "
                f"{acc:.5f}+-{std:.5f}{noflip} (best {loop.best_val[name]['accuracy']:.5f} at "
                f"iter {loop.best_val[name]['iteration']})")
            if loop.writer is not None:
                loop.writer.add_scalar(f"val/{name}", acc, loop.iteration)
        score = float(np.mean(list(accs.values())))
        loop.last_val = {"iteration": loop.iteration, "accuracy": accs, "accuracy_std": stds,
                         "mean": score}
        new_best = loop.best_score is None or score > loop.best_score
        if new_best:
            loop.best_score = score
        loop.logger.info(f"verification took {time.time() - t0:.1f} s")
        return dict(loop.last_val, new_best=new_best)


class CheckpointCallback(Callback):
    """Every ``interval`` iterations, at the end, and when verification finds a new best.

    Before anything is written the pending losses are checked (a NaN stops the run before it
    can replace a good checkpoint) and so are the parameters.

    Parameters
    ----------
    interval : int
    validation : VerificationCallback, optional
        Asked for the current iteration's result (:meth:`VerificationCallback.result_for`);
        a new best mean accuracy writes a checkpoint and marks it as the best.
    """

    def __init__(self, interval, validation=None):
        self.interval = int(interval)
        self.validation = validation

    def on_iteration_end(self, loop):
        result = None  # verification runs on rank 0 only
        if loop.is_chief and self.validation is not None:
            result = self.validation.result_for(loop)
        new_best = bool(result and result["new_best"])
        sliced = getattr(loop, "pfc", None) is not None and loop.num_kv_workers > 1
        if sliced and loop._reseed_due():
            # every worker holds a slice of the classifier: all must save when rank 0 does
            new_best = loop.agree(new_best)
        if not (_due(loop, self.interval) or new_best):
            return
        # every worker checks (and would stop) at the same iterations, not only the writer
        loop.sync_metrics()
        loop.check_parameters_finite()
        if sliced:
            loop.save_classifier_slice()
        if not loop.is_chief:
            return
        path = loop.save_checkpoint()
        if new_best:
            loop.checkpoints.mark_best(loop.iteration, result["mean"], loop.last_val)
            loop.checkpoints.prune()
        loop.logger.info(f"saved checkpoint {path}" + (" (best so far)" if new_best else ""))
