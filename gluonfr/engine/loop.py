"""The training loop: config -> data -> backbone + head -> trainer -> callbacks.

One readable loop in the spirit of insightface's ``arcface_torch``. Per iteration it splits
the batch over the devices, runs the hybridized backbone and head under autograd, and takes
one optimiser step; per-iteration loss and accuracy sums stay on the devices until a callback
asks for them (see :meth:`TrainLoop.sync_metrics`), so nothing waits for the devices between
log intervals.
"""
import glob
import importlib
import json
import logging
import math
import os
import time
import uuid
import warnings

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from ..data import FaceRecordDataset, PKSampler, TrainAugmentation, TrainLoader
from ..data.loader import ShardedTrainLoader
from ..loss import check_labels
from ..metrics import load_targets
from ..model_zoo import default_initializer, get_model
from ..model_zoo.model_store import arch_of, resolve_weights
from ..utils.context import parse_ctx
from ..utils.fileio import atomic_open
from .callbacks import (
    CheckpointCallback,
    LogCallback,
    VerificationCallback,
    make_summary_writer,
    setup_logger,
)
from .checkpoint import CheckpointManager, find_checkpoint
from .config import TrainConfig
from .distributed import DistGradientReducer, StepWatchdog, close_kvstore, create_kvstore
from .head import PartialFCHead, build_heads, build_partial_fc_heads
from .optim import (
    clip_global_norm,
    count_skipped_update,
    load_optimizer_states,
    loss_scaler_state,
    make_lr_scheduler,
    make_optimizer,
    restore_loss_scaler,
    save_optimizer_states,
    set_num_update,
    set_wd_mult,
)

__all__ = ["train", "TrainLoop", "NonFiniteLossError", "build_backbone"]


#: Offset between the MXNet seeds of distributed workers (rank r draws from seed + r * stride).
_RANK_SEED_STRIDE = 7919


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the run stopped before saving over a good checkpoint.

    Attributes
    ----------
    iteration : int
        The first iteration whose loss was not finite.
    checkpoint : str or None
        The last good checkpoint (``.json``), to resume from with gentler settings.
    """

    def __init__(self, message, iteration, checkpoint=None):
        super().__init__(message)
        self.iteration = iteration
        self.checkpoint = checkpoint


def build_backbone(model, ctx, embedding_size=None, input_size=112, stored_kwargs=None):
    """The embedding network: a model-zoo name or ``"package.module:function"``.

    ``embedding_size`` and (when not 112) ``input_size`` go to the constructor, after the
    constructor arguments of stored weights (``stored_kwargs``: an imported model's
    epsilon, input normalisation, widths), which they must not contradict. A factory's
    network is initialised with :func:`gluonfr.model_zoo.default_initializer` unless it
    already is.
    """
    kwargs = dict(stored_kwargs or {})
    for key, value in (("embedding_size", embedding_size),
                       ("input_size", None if int(input_size) == 112 else input_size)):
        if value is None:
            continue
        if key in kwargs and int(kwargs[key]) != int(value):
            raise ValueError(f"--{key.replace('_', '-')} {value}: the pretrained backbone "
                             f"was built with {key}={kwargs[key]}")
        kwargs[key] = int(value)
    if ":" not in model:
        return get_model(model, ctx=ctx, **kwargs)
    module, _, name = model.partition(":")
    try:
        factory = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"--model {model}: cannot import {name} from {module} ({err})") from None
    net = factory(**kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "already initialized" is fine for a factory's net
        net.initialize(default_initializer(), ctx=ctx)
    return net


class TrainLoop:
    """The state of one training run; :meth:`run` trains it.

    Parameters
    ----------
    cfg : TrainConfig
    backbone : HybridBlock, optional
        Use this network instead of building ``cfg.model`` (already initialised).
    dataset : dataset, optional
        Use this dataset instead of ``FaceRecordDataset(cfg.data_dir)``; it needs
        ``num_classes`` and ``(HWC uint8 RGB image, label)`` items.
    callbacks : list of Callback, optional
        Run after the default logging, verification and checkpoint callbacks.

    Notes
    -----
    Attributes callbacks use: iteration, epoch, batch_in_epoch, max_iters, global_batch,
    ctx, backbone, head, trainer, logger, writer, checkpoints, is_chief, best_val,
    best_score, learning_rate, pfc (the :class:`gluonfr.nn.PartialFC` head or ``None``;
    see :meth:`head_stats`).
    """

    def __init__(self, cfg, backbone=None, dataset=None, callbacks=None):
        if not isinstance(cfg, TrainConfig):
            raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        # each builder reads what the ones before it set (named in its docstring)
        resume = self._setup_run()
        self._build_data(dataset)
        self._build_networks(backbone, resume)
        self._build_optimizer()
        self._init_run_state(resume)
        self._build_callbacks(callbacks)

    # -- builders (called once, in this order, by __init__) -------------------------------------
    def _setup_run(self):
        """Devices, kvstore and rank, the save folder and log, AMP, seeds; finds ``--resume``.

        Sets ``ctx``, ``kv``, ``rank``, ``num_kv_workers``, ``is_chief``, ``logger``,
        ``run_id``, ``checkpoints``, ``watchdog``. Returns the checkpoint description to resume
        from, or ``None``.
        """
        cfg = self.cfg
        self.ctx = parse_ctx(cfg.ctx_spec)
        self.kv, self.rank, self.num_kv_workers = create_kvstore(cfg.kvstore, self.ctx)
        self.is_chief = self.rank == 0
        os.makedirs(cfg.save_dir, exist_ok=True)
        self.logger = setup_logger(os.path.join(cfg.save_dir, "log.txt") if self.is_chief
                                   else None, console=True)
        if not self.is_chief:
            self.logger.setLevel(logging.WARNING)
        self.iteration = 0
        self.watchdog = None
        self._closing = False
        if self.kv is not None and "dist" in self.kv.type and cfg.dist_timeout > 0:
            # from here on every kvstore call may wait for the other workers
            self.watchdog = StepWatchdog(cfg.dist_timeout, self.rank, self.logger,
                                         self._progress)
        resume = None
        if cfg.resume:
            resume = find_checkpoint(cfg.resume, cfg.save_dir, cfg.model_tag)
        # a resumed run continues the run it resumes (its checkpoints are its own to prune)
        self.run_id = resume.get("run_id") if resume is not None else uuid.uuid4().hex[:12]
        self.checkpoints = CheckpointManager(cfg.save_dir, cfg.model_tag, cfg.keep_last,
                                             run_id=self.run_id)
        if self.is_chief:
            self._prepare_save_dir(resume)
        if cfg.dtype == "float16":
            from mxnet.contrib import amp

            amp.init(target_dtype="float16")  # before any network is built
        seed = int(cfg.seed)
        # data order and augmentation come from `seed` alone (they are global); MXNet's own
        # draws (dropout) differ per worker, or every worker would drop the same units
        mx.random.seed(seed + _RANK_SEED_STRIDE * self.rank)
        return resume

    def _build_data(self, dataset):
        """The dataset and the (sharded when distributed) loader; batch sizes and iterations.

        Needs ``ctx``, ``rank``, ``num_kv_workers``, ``logger``. Sets ``num_classes``,
        ``per_device_batch``, ``worker_batch``, ``global_batch``, ``loader``,
        ``iters_per_epoch``, ``max_iters``.
        """
        cfg = self.cfg
        seed = int(cfg.seed)
        if dataset is None:
            dataset = FaceRecordDataset(cfg.data_dir)
        self.num_classes = int(dataset.num_classes)
        self.per_device_batch = cfg.batch_size
        self.worker_batch = cfg.batch_size * len(self.ctx)
        self.global_batch = self.worker_batch * self.num_kv_workers
        loader_kw = dict(num_workers=cfg.num_workers, seed=seed,
                         augmentation=TrainAugmentation(flip=cfg.flip_augment),
                         image_size=(cfg.input_size, cfg.input_size),
                         strict=cfg.strict_data, skip_corrupt=cfg.skip_corrupt,
                         logger=self.logger)
        if cfg.sampler == "pk":
            if self.num_kv_workers > 1:
                raise ValueError("--sampler pk is not supported with distributed kvstores")
            loader_kw["batch_sampler"] = PKSampler.from_dataset(dataset, cfg.pk_p, cfg.pk_k,
                                                                seed=seed)
        if self.num_kv_workers == 1:
            self.loader = TrainLoader(dataset, self.global_batch, **loader_kw)
        else:
            self.loader = ShardedTrainLoader(dataset, self.worker_batch, self.rank,
                                             self.num_kv_workers, **loader_kw)
        self.iters_per_epoch = len(self.loader)
        self.max_iters = cfg.max_iters or cfg.epochs * self.iters_per_epoch
        if self.max_iters <= cfg.warmup_iters:
            raise ValueError(f"{self.max_iters} iterations ({cfg.epochs} epochs of "
                             f"{self.iters_per_epoch}) leave nothing after --warmup-iters "
                             f"{cfg.warmup_iters}")

    def _build_networks(self, backbone, resume):
        """The backbone (given, built, or from stored weights), the heads, hybridization.

        Needs ``ctx``, ``num_classes``. Sets ``backbone``, ``embedding_size``, ``main_head``,
        ``warmup_head``, ``pfc`` (the :class:`gluonfr.nn.PartialFC` of both heads, or
        ``None`` for the replicated head).
        """
        cfg = self.cfg
        stored = None  # (arch, constructor kwargs, verified file) of stored weights
        if cfg.pretrained_backbone and not os.path.isfile(cfg.pretrained_backbone):
            stored = resolve_weights(cfg.pretrained_backbone)
            if backbone is None and arch_of(cfg.model) != stored[0]:
                raise ValueError(f"--pretrained-backbone {cfg.pretrained_backbone}: holds "
                                 f"{stored[0]} weights, but --model is {cfg.model}")
        self.backbone = backbone if backbone is not None else build_backbone(
            cfg.model, self.ctx, cfg.embedding_size, cfg.input_size,
            stored[1] if stored else None)
        emb = getattr(self.backbone, "embedding_size", None) or cfg.embedding_size
        if not emb:
            raise ValueError(f"--model {cfg.model}: the network has no embedding_size "
                             "attribute; pass --embedding-size")
        self.embedding_size = int(emb)
        if cfg.pretrained_backbone and resume is None:
            # released models carry no classifier: the head below starts fresh either way
            self._load_backbone(stored[2] if stored else cfg.pretrained_backbone)
        if cfg.uses_partial_fc:
            collective = None
            if self.num_kv_workers > 1:
                from .collective import Collective

                collective = Collective(self.kv)
            self.main_head, self.warmup_head = build_partial_fc_heads(
                cfg, self.num_classes, self.embedding_size, self.ctx, collective)
            self.pfc = self.main_head.pfc
        else:
            self.main_head, self.warmup_head = build_heads(cfg, self.num_classes,
                                                           self.embedding_size)
            self.pfc = None
        self.main_head.initialize(mx.init.Xavier(), ctx=self.ctx)
        if cfg.hybridize:
            # static_alloc/static_shape pay off on GPUs; on CPU they cost peak memory for no
            # speed gain (measured: docs/performance.rst)
            static = all(c.device_type == "gpu" for c in self.ctx)
            for block in (self.backbone, self.main_head, self.warmup_head):
                if block is not None:
                    block.hybridize(static_alloc=static, static_shape=static)

    def _build_optimizer(self):
        """Weight-decay groups, lr schedule, optimiser, trainer (AMP) and gradient reducer.

        Needs ``backbone``, ``main_head``, ``max_iters``, ``kv``. Sets ``wd_mults``,
        ``lr_scheduler``, ``params``, ``chunks``, ``trainer``.
        """
        cfg = self.cfg
        self.wd_mults = set_wd_mult(self.backbone.collect_params(),
                                    self.main_head.collect_params(), cfg.no_wd,
                                    cfg.head_wd_mult,
                                    cfg.head_lr_mult)
        self.lr_scheduler = make_lr_scheduler(
            cfg.lr_mode, cfg.lr, self.max_iters, cfg.warmup_iters, cfg.warmup_lr, cfg.lr_steps,
            cfg.lr_factor, cfg.lr_power, cfg.target_lr)
        optimizer = make_optimizer(cfg.optimizer, cfg.lr, cfg.wd, cfg.momentum,
                                   self.lr_scheduler)
        self.params = self.backbone.collect_params()
        self.params.update(self.main_head.collect_params())
        self.chunks = cfg.chunks_per_device()
        if self.chunks > 1:
            # gradients add up over the chunks; step() zeroes them before each batch (the
            # warm-up head shares the main head's classifier: self.params holds every weight)
            for p in self.params.values():
                if p.grad_req != "null":
                    p.grad_req = "add"
        self.trainer = gluon.Trainer(self.params, optimizer, kvstore=self.kv,
                                     update_on_kvstore=False if self.kv is not None else None)
        if cfg.dtype == "float16":
            from mxnet.contrib import amp

            amp.init_trainer(self.trainer)  # dynamic loss scaling
        self._reduce_dist = None
        if self.kv is not None and "dist" in self.kv.type:
            self._reduce_dist = DistGradientReducer(self.kv, list(self.params.values()),
                                                    self.ctx[0], key_offset=len(self.params.keys()))

    def _init_run_state(self, resume):
        """Position, best results and metric windows, restored from ``resume`` when given."""
        self.iteration = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.best_val = {}
        self.best_score = None
        self.last_val = None
        self.last_stats = None
        self.last_checkpoint = None
        self._pending = []  # per-iteration (iteration, [(loss_sum, hits)] per device)
        self._window = {"loss": 0.0, "hits": 0.0, "samples": 0}
        self._checked_iter = 0
        self.amp_skipped = 0  # float16 updates the loss scaler skipped (overflow)
        if resume is not None:
            self._restore(resume)

    def _build_callbacks(self, callbacks):
        """TensorBoard writer, verification targets and the callbacks (built-ins first).

        Needs ``is_chief``, ``logger``. Sets ``writer``, ``targets``, ``callbacks``.
        """
        cfg = self.cfg
        self.writer = make_summary_writer(cfg.tensorboard_dir) if self.is_chief else None
        self.targets = {}
        if self.is_chief and cfg.val_interval > 0 and cfg.val_targets:
            self.targets, missing = load_targets(cfg.data_dir, cfg.val_targets,
                                                 image_size=(cfg.input_size, cfg.input_size))
            for path in missing:
                self.logger.warning(f"verification target {path} not found: skipped")
        validation = VerificationCallback(cfg.val_interval, self.targets, cfg.val_batch_size,
                                          cfg.val_flip)
        # the checkpoint callback asks the validation callback for this iteration's result
        # (computed once, whichever of the two runs first) to know whether it is a new best
        self.callbacks = [LogCallback(cfg.log_interval, progress=cfg.progress), validation,
                          CheckpointCallback(cfg.save_interval, validation=validation)]
        self.callbacks += list(callbacks or [])

    # -- properties ----------------------------------------------------------------------------
    @property
    def head(self):
        """The head of the current phase (NormFace during loss warm-up)."""
        if self.warmup_head is not None and self.iteration < self.cfg.loss_warmup_iters:
            return self.warmup_head
        return self.main_head

    @property
    def loss_name(self):
        """The loss of the last completed iteration (of the first one before training)."""
        warm = self.warmup_head is not None and self.iteration <= self.cfg.loss_warmup_iters
        return "normface" if warm else self.cfg.loss

    @property
    def learning_rate(self):
        """The lr of the last update (the schedule at the optimiser's counter)."""
        return float(self.lr_scheduler(max(self.trainer.optimizer.num_update, 1)))

    # -- checkpoints ---------------------------------------------------------------------------
    def _load_backbone(self, path):
        try:
            self.backbone.load_parameters(path, ctx=self.ctx)
        except (AssertionError, ValueError, mx.MXNetError) as err:
            raise ValueError(f"--pretrained-backbone {path}: does not fit --model "
                             f"{self.cfg.model} ({str(err).splitlines()[0]})") from None
        self.logger.info(f"backbone initialised from {path}")

    def _restore(self, meta):
        paths = meta["paths"]
        try:
            self.backbone.load_parameters(paths["backbone"], ctx=self.ctx)
            self.main_head.load_parameters(paths["head"], ctx=self.ctx)
        except (AssertionError, ValueError, mx.MXNetError) as err:
            raise ValueError(f"--resume {meta['json']}: its parameters do not fit this "
                             f"model / loss ({str(err).splitlines()[0]})") from None
        load_optimizer_states(self.trainer, paths["states"])
        it = int(meta["iteration"])
        set_num_update(self.trainer.optimizer, it)  # skipped AMP steps are counted too
        restore_loss_scaler(self.trainer, meta.get("loss_scaler"))
        self.amp_skipped = int(meta.get("amp_skipped_steps", 0))
        self.iteration = it
        self.epoch = int(meta["epoch"])
        self.batch_in_epoch = int(meta["batch_in_epoch"])
        self.best_val = meta.get("best_val", {})
        self.best_score = meta.get("best_score")
        self._checked_iter = it
        self.last_checkpoint = meta["json"]
        self._reseed()
        if self.global_batch != int(meta.get("global_batch", self.global_batch)):
            self.logger.warning(f"resuming with global batch {self.global_batch}, the "
                                f"checkpoint was trained with {meta['global_batch']}: the data "
                                "order will differ from an uninterrupted run")
        self.logger.info(f"resumed from {meta['json']} at iteration {it} (epoch "
                         f"{self.epoch}, batch {self.batch_in_epoch}, lr "
                         f"{self.learning_rate:.6g})")

    def _prepare_save_dir(self, resume):
        """Refuse (or with ``--overwrite`` clear) a save dir holding another run's checkpoints,
        and remove the temporaries of checkpoint writes an earlier process did not finish.

        Two runs in one folder would prune each other's checkpoints (keeping the highest
        iterations of both) and ``--resume latest`` would pick either.
        """
        cfg = self.cfg
        for path in self.checkpoints.clean_temporaries():
            self.logger.warning(f"removed {path}: left by an interrupted checkpoint write")
        others = self.checkpoints.others()
        if not others or resume is not None:
            return
        names = ", ".join(os.path.basename(e["json"]) for e in others[-3:])
        if not cfg.overwrite:
            raise ValueError(f"--save-dir {cfg.save_dir} already holds checkpoints of another "
                             f"run ({len(others)}, latest: {names}): pass --resume to continue "
                             "it, --overwrite to delete them and start afresh, or choose "
                             "another --save-dir")
        for e in others:
            self.checkpoints.delete(e)
        for path in glob.glob(os.path.join(glob.escape(cfg.save_dir), "*-best.json")):
            os.remove(path)
        self.logger.warning(f"--overwrite: deleted {len(others)} checkpoints of an earlier "
                            f"run in {cfg.save_dir} (latest: {names})")

    def _reseed(self):
        """Re-seed MXNet's generator from (seed, rank, iteration): dropout draws after a
        checkpoint are the same whether the run continued or was resumed from it.

        Every distributed worker does this at the same iterations (see :meth:`_reseed_due`),
        not only the one that writes the checkpoint, since every worker restores from it.
        """
        mx.random.seed((int(self.cfg.seed) * 1000003 + self.iteration
                        + _RANK_SEED_STRIDE * self.rank) % (2 ** 31))

    def _reseed_due(self):
        """Whether this iteration may have written a checkpoint (periodic or best-so-far).

        Known on every worker from the configuration alone: the best checkpoint can only be
        written where verification runs, and verification results exist only on rank 0.
        """
        it, last = self.iteration, self.iteration == self.max_iters
        return any(n > 0 and (it % n == 0 or last)
                   for n in (self.cfg.save_interval, self.cfg.val_interval))

    def agree(self, flag):
        """Distributed Partial FC: ``flag`` of any worker, known to every worker."""
        vote = mx.nd.array([1.0 if flag else 0.0], ctx=self.ctx[0])
        return bool(self.pfc.collective.all_reduce(vote, op="max").asscalar())

    def save_classifier_slice(self):
        """Distributed Partial FC: each worker but rank 0 writes its classifier slices of this
        iteration's checkpoint, then all meet, so that rank 0 writes the checkpoint (its own
        slices, then the ``.json`` last) only once every slice exists."""
        if not self.is_chief:
            head = os.path.join(self.cfg.save_dir, self.checkpoints.names(self.iteration)["head"])
            self.main_head.save_parameters(head)  # to worker_file(head, rank)
        self.pfc.collective.all_reduce(mx.nd.ones((1,), ctx=self.ctx[0])).wait_to_read()

    def save_checkpoint(self):
        """Write a checkpoint of the current iteration (see :mod:`.checkpoint`)."""
        meta = {
            "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
            "iterations_per_epoch": self.iters_per_epoch, "max_iters": self.max_iters,
            "global_batch": self.global_batch, "num_update": self.trainer.optimizer.num_update,
            "lr": self.learning_rate, "loss_phase": self.loss_name,
            "lr_schedule": {"mode": self.cfg.lr_mode, "base_lr": self.cfg.lr,
                            "warmup_iters": self.cfg.warmup_iters, "steps": self.cfg.lr_steps,
                            "factor": self.cfg.lr_factor, "power": self.cfg.lr_power,
                            "target_lr": self.cfg.target_lr, "max_iters": self.max_iters,
                            "state": "lr = schedule(num_update)"},
            "seeds": {"seed": self.cfg.seed, "data": "order and augmentation = f(seed, epoch, "
                      "index)", "mxnet": "reseeded from (seed, iteration) at each checkpoint"},
            "best_val": self.best_val, "best_score": self.best_score, "last_val": self.last_val,
            "wd_mult": self.wd_mults, "config": self.cfg.to_dict(), "time": time.time(),
            "loss_scaler": loss_scaler_state(self.trainer), "amp_skipped_steps": self.amp_skipped,
        }
        if self.pfc is not None:  # any sharding resumes it; this is what wrote it
            meta["partial_fc"] = {"classes": self.pfc.classes, "shards": self.pfc.num_shards,
                                  "sample_rate": self.pfc.sample_rate,
                                  "num_update": self.pfc.num_update}
        path = self.checkpoints.save(self.iteration, self.backbone, self.main_head,
                                     lambda p: save_optimizer_states(self.trainer, p), meta)
        self.last_checkpoint = path
        self._reseed()
        return path

    # -- metrics -------------------------------------------------------------------------------
    def sync_metrics(self):
        """Bring the per-iteration sums since the last call to the host.

        Returns the window's mean loss and accuracy (since the previous log line) and
        raises :class:`NonFiniteLossError` naming the first iteration whose loss is NaN/inf.
        """
        if self._pending:
            its = [it for it, _ in self._pending]
            loss, hit = 0.0, 0.0
            for d in range(len(self.ctx)):
                # one stacked copy per device and quantity: two waits per device per call
                loss = loss + mx.nd.concat(*[per[d][0] for _, per in self._pending],
                                           dim=0).asnumpy().astype(np.float64)
                hit = hit + mx.nd.concat(*[per[d][1] for _, per in self._pending],
                                         dim=0).asnumpy().astype(np.float64)
            self._pending = []
            bad = np.flatnonzero(~np.isfinite(loss))
            if bad.size:
                self._stop_non_finite(its[bad[0]], loss[bad[0]])
            self._window["loss"] += float(loss.sum())
            self._window["hits"] += float(hit.sum())
            self._window["samples"] += len(its) * self.worker_batch
            self._checked_iter = its[-1]
        w = self._window
        n = max(w["samples"], 1)
        stats = {"loss": w["loss"] / n, "accuracy": w["hits"] / n, "samples": w["samples"]}
        self._window = {"loss": 0.0, "hits": 0.0, "samples": 0}
        return stats

    def _stop_non_finite(self, iteration, value, what="loss"):
        ckpt = self.last_checkpoint
        where = (f"the last good checkpoint is {ckpt}" if ckpt else
                 "no checkpoint was written yet")
        msg = (f"{what} became {value} at iteration {iteration}: training stopped; {where}. "
               f"Resume from it with a lower --lr, a longer --warmup-iters or "
               f"--loss-warmup-iters (NormFace before the margin loss), or a smaller "
               f"--margin-s.")
        self.logger.error(msg)
        raise NonFiniteLossError(msg, iteration, ckpt)

    def check_parameters_finite(self):
        """Raise :class:`NonFiniteLossError` if any trained parameter holds NaN / inf."""
        ctx = self.ctx[0]
        norms = [p.data(ctx).norm() for p in self.params.values() if p.grad_req != "null"]
        if self.pfc is not None:
            norms += [w.norm().as_in_context(ctx) for w in self.pfc.weight]
        total = float(mx.nd.add_n(*norms).asscalar()) if norms else 0.0
        if not math.isfinite(total):
            self._stop_non_finite(self.iteration, total, what="the parameters' norm")

    def head_stats(self):
        """Partial FC: the last step's sampled classes and the head's memory, else ``None``.

        ``sampled_classes`` counts this worker's slices; ``head_bytes`` is their centres,
        momentum and sampled (global batch x sampled) logits.
        """
        if self.pfc is None or self.pfc.last_num_sampled is None:
            return None
        return {"sampled_classes": int(self.pfc.last_num_sampled),
                "head_bytes": int(self.pfc.memory_bytes(self.global_batch))}

    # -- the loop ------------------------------------------------------------------------------
    def _batches(self):
        """``(data, label)`` from the stored position on, epoch after epoch."""
        self.loader.set_epoch(self.epoch, self.batch_in_epoch)
        while True:
            yield from self.loader
            # the loader moved to the next epoch by itself

    def _progress(self):
        """Where the run is, for the watchdog's message."""
        if self._closing:
            return (f"all {self.iteration} iterations done, waiting in the kvstore's exit "
                    "barrier")
        return f"last finished iteration {self.iteration}"

    def _beat(self):
        if self.watchdog is not None:
            self.watchdog.beat()

    def step(self, data, label):
        """One optimiser step on a batch (no host synchronisation)."""
        labels = check_labels(label, self.num_classes)  # host array: no device wait
        head = self.head
        if isinstance(head, PartialFCHead):
            self._step_partial_fc(head, data, labels)
            return
        if self.chunks > 1:
            self.params.zero_grad()  # one reset_arrays operator per device
        outs = []
        n = data.shape[0] // self.chunks
        for k in range(self.chunks):
            part = slice(k * n, (k + 1) * n)  # each chunk is split over the devices
            xs = gluon.utils.split_and_load(data[part], self.ctx, even_split=True)
            ys = gluon.utils.split_and_load(label[part], self.ctx, even_split=True)
            with autograd.record():
                chunk = [head(self.backbone(x), y) for x, y in zip(xs, ys)]
                losses = [loss for loss, _ in chunk]
                if getattr(self.trainer, "_amp_loss_scaler", None) is not None:
                    from mxnet.contrib import amp

                    with amp.scale_loss(losses, self.trainer) as scaled:
                        autograd.backward(scaled)
                else:
                    autograd.backward(losses)
            outs += chunk
        self._update()
        sums = [(loss.sum(), hit.sum()) for loss, hit in outs]
        if self.chunks > 1:  # one (loss, hits) pair per device, summed over the chunks
            d = len(self.ctx)
            sums = [tuple(mx.nd.add_n(*q) for q in zip(*sums[i::d])) for i in range(d)]
        self._pending.append((self.iteration + 1, sums))

    def _step_partial_fc(self, head, data, labels):
        """The step with a :class:`PartialFC` head: backbone forward on every device, the
        sharded softmax and its gradients, the backbone's backward, both updates."""
        xs = gluon.utils.split_and_load(data, self.ctx, even_split=True)
        with autograd.record():
            embs = [self.backbone(x) for x in xs]
        scaler = getattr(self.trainer, "_amp_loss_scaler", None)
        scale = scaler.loss_scale if scaler is not None else 1.0
        losses, hits, grads = self.pfc.forward_backward(embs, labels, head.loss,
                                                        embedding_grad_scale=scale)
        if scaler is not None:
            from mxnet.contrib import amp

            # sets the trainer's unscaling for this step; the gradients carry `scale` already
            with amp.scale_loss(losses, self.trainer):
                autograd.backward(embs, head_grads=grads)
        else:
            autograd.backward(embs, head_grads=grads)
        self._update()
        self._pending.append((self.iteration + 1, [(v.sum(), h.sum())
                                                   for v, h in zip(losses, hits)]))

    def _update_partial_fc(self, skipped):
        """Row-wise SGD of the sampled class centres, at the lr the backbone's step used."""
        if skipped:
            self.pfc.discard_step()
            return
        cfg = self.cfg
        self.pfc.update(self.learning_rate * cfg.head_lr_mult, cfg.wd * cfg.head_wd_mult,
                        cfg.momentum, rescale_grad=1.0 / self.global_batch)

    def _update(self):
        """All-reduce, clip (``--clip-grad``) and apply the gradients; count AMP skips."""
        trainer, cfg = self.trainer, self.cfg
        scaler = getattr(trainer, "_amp_loss_scaler", None)
        before = trainer.optimizer.num_update
        if self._reduce_dist is None and not cfg.clip_grad:
            trainer.step(self.global_batch)
        else:
            if self._reduce_dist is not None:
                self._reduce_dist()
            else:
                trainer.allreduce_grads()
            if cfg.clip_grad:
                # AMP's gradients carry the loss scale; the clip is on the true gradient
                scale = scaler.loss_scale if scaler is not None else 1.0
                clip_global_norm(list(self.params.values()), cfg.clip_grad,
                                 self.global_batch * scale)
            trainer.update(self.global_batch)
        skipped = scaler is not None and trainer.optimizer.num_update == before
        if self.pfc is not None:
            self._update_partial_fc(skipped)
        if skipped:
            # the scaler found inf/NaN gradients and MXNet skipped the update
            count_skipped_update(trainer.optimizer)
            self.amp_skipped += 1
            self.logger.warning(f"iteration {self.iteration + 1}: float16 gradients "
                                f"overflowed, update skipped ({self.amp_skipped} so far); loss "
                                f"scale {scaler.loss_scale:g} -> {scaler._next_loss_scale:g}")

    def run(self):
        """Train to ``max_iters``; returns a summary dict (see :func:`train`)."""
        cfg = self.cfg
        self.logger.info(f"training {cfg.model} with {cfg.loss} on {self.num_classes} classes, "
                         f"{len(self.loader.dataset)} images; devices "
                         f"{[str(c) for c in self.ctx]} x {self.num_kv_workers} worker(s), "
                         f"global batch {self.global_batch}, {self.max_iters} iterations "
                         f"({self.iters_per_epoch} per epoch)")
        if self.chunks > 1:
            self.logger.info(f"each device's batch of {cfg.batch_size} runs as {self.chunks} "
                             f"micro-batches of {cfg.batch_size // self.chunks} (BatchNorm "
                             "statistics per micro-batch; --micro-batch 0 for whole batches)")
        if self.is_chief and self.iteration == 0:
            with atomic_open(os.path.join(cfg.save_dir, "config.json"), "w",
                             encoding="utf-8") as f:
                json.dump(cfg.to_dict(), f, indent=2, sort_keys=True)
        start_iter, t0 = self.iteration, time.time()
        for cb in self.callbacks:
            cb.on_train_begin(self)
        self._beat()  # setting up (networks, data, the kvstore's first broadcast) is done
        try:
            batches = self._batches()
            while self.iteration < self.max_iters:
                data, label = next(batches)
                self.step(data, label)
                self._beat()
                self.iteration += 1
                self.batch_in_epoch += 1
                if self.batch_in_epoch == self.iters_per_epoch:
                    self.epoch, self.batch_in_epoch = self.epoch + 1, 0
                for cb in self.callbacks:
                    cb.on_iteration_end(self)
                    self._beat()
                if self._reseed_due():
                    self._reseed()
            self.sync_metrics()
        except BaseException as err:
            if self.watchdog is not None:
                self.logger.error(f"rank {self.rank}: training failed after iteration "
                                  f"{self.iteration} ({type(err).__name__}: {err}); this "
                                  "worker exits and gluonfr-launch-dist stops the job")
                self.watchdog.fail(err)
            raise
        finally:
            for cb in self.callbacks:
                cb.on_train_end(self)
            self.loader.close()
            if self.writer is not None:
                self.writer.flush()
                self.writer.close()
            self._beat()
        if self.kv is not None and "dist" in self.kv.type:
            # every worker, here and now (not in the interpreter's exit); the watchdog still
            # stops a worker that waits in ps-lite's exit barrier for one that is gone
            self._closing = True
            close_kvstore(self.kv)
        if self.watchdog is not None:
            self.watchdog.stop()
        elapsed = time.time() - t0
        done = self.iteration - start_iter
        summary = {
            "iterations": self.iteration, "trained_iterations": done, "seconds": elapsed,
            "samples_per_sec": done * self.global_batch / max(elapsed, 1e-9),
            "checkpoint": self.last_checkpoint, "best_val": self.best_val,
            "last_val": self.last_val, "last_stats": self.last_stats,
            "save_dir": cfg.save_dir, "tensorboard": cfg.tensorboard_dir,
        }
        self.logger.info(f"done: {done} iterations in {elapsed:.1f} s "
                         f"({summary['samples_per_sec']:.1f} samples/s)")
        return summary


def train(cfg, backbone=None, dataset=None, callbacks=None):
    """Train a face-embedding network as ``cfg`` says (what ``scripts/train.py`` runs).

    Parameters
    ----------
    cfg : TrainConfig
    backbone : HybridBlock, optional
        An initialised network to train instead of ``cfg.model``.
    dataset : optional
        Instead of ``FaceRecordDataset(cfg.data_dir)``.
    callbacks : list of Callback, optional
        Extra callbacks after the built-in ones.

    Returns
    -------
    dict
        ``iterations``, ``seconds``, ``samples_per_sec``, ``checkpoint`` (last ``.json``),
        ``best_val``, ``last_val``, ``last_stats``, ``save_dir``, ``tensorboard``.

    Raises
    ------
    NonFiniteLossError
        When the loss becomes NaN / inf (the message names the iteration and the last good
        checkpoint).
    """
    return TrainLoop(cfg, backbone=backbone, dataset=dataset, callbacks=callbacks).run()
