"""The training configuration: one dataclass, its validation, and the matching command line.

``scripts/train.py`` is :func:`add_arguments` + :func:`config_from_args` +
:func:`gluonfr.engine.train`; the shell recipes in ``scripts/`` only choose values for these
fields.
"""
import argparse
import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import List, Optional

from ..loss import get_loss_class, get_loss_list, scale_and_margin_names
from ..utils.names import unknown_name_error

__all__ = ["TrainConfig", "add_arguments", "config_from_args", "LOSSES", "LR_MODES",
           "KVSTORES", "CPU_MICRO_BATCH", "parse_kwargs", "load_config_file", "recipe_names",
           "RECIPES_DIR"]

#: The shipped recipes (``--config NAME``): one readable TOML file per published model.
RECIPES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "recipes")

#: kinds of registry losses that can be ``--loss`` (see :mod:`gluonfr.loss.registry`)
HEAD_KINDS = ("cosine", "embedding", "logits")
#: the classification heads registered when this module was imported (the check itself asks
#: the registry, so heads registered later are accepted too)
LOSSES = tuple(get_loss_list(HEAD_KINDS))
LR_MODES = ("step", "cosine", "poly")
KVSTORES = ("device", "local", "nccl", "dist_sync", "dist_device_sync")
#: Samples per chunk of the default CPU micro-batching: small chunks keep the working set in
#: cache (faster per sample and far less peak memory than whole batches, see
#: docs/performance.rst), and 16 is about the smallest batch BatchNorm's statistics are known
#: to tolerate.
CPU_MICRO_BATCH = 16


@dataclass
class TrainConfig:
    """Everything one training run depends on (saved beside every checkpoint).

    Attributes
    ----------
    model : str
        A :func:`gluonfr.model_zoo.get_model` name, or ``"package.module:function"`` naming a
        callable that returns an embedding ``HybridBlock`` (for your own backbones).
    embedding_size : int or None
        Passed to the model constructor; ``None`` keeps the model's default.
    input_size : int
        Side of the square network input (a multiple of 16). Images of another size are
        resized by the loader; 112 is the insightface standard every published model uses.
    loss : str
        A classification head of the loss registry (:func:`gluonfr.loss.get_loss_list`):
        ``arcface``, ``cosface``, ``combined`` (``margin_m1/m2/m3``), ``normface`` (s*cos, no
        margin), ``l2softmax`` (alpha = ``margin_s``), ``softmax`` (plain dense classifier),
        and the other heads of :mod:`gluonfr.loss`.
    margin_s, margin_m : float or None
        Scale ``s`` and margin ``m`` of the head (``None``: the head's own default; after
        construction ``margin_s`` holds the value used).
    loss_kwargs : dict
        Further constructor arguments of the head, e.g. ``{"t": 0.2}`` for ``mv_softmax``
        (``--loss-kwargs t=0.2``).
    margin_m1, margin_m2, margin_m3 : float
        Combined margin ``s*(cos(m1*theta + m2) - m3)``.
    aux_loss : str or None
        An auxiliary term of the loss registry (``center``, ``ring``, ``git``, ``triplet``)
        added to the head's per-sample loss; ``aux_kwargs`` are its constructor arguments
        (``--aux-loss center --aux-kwargs lamda=0.01``).
    sampler : str
        ``random`` (a permutation of the images per epoch) or ``pk``: batches of ``pk_p``
        identities x ``pk_k`` images (:class:`gluonfr.data.PKSampler`, for triplet losses);
        ``pk_p * pk_k`` must be the global batch and each device's share a multiple of
        ``pk_k``.
    partial_fc : bool
        Train the class centres as :class:`gluonfr.nn.PartialFC`: sliced over the devices
        (and workers), the softmax combined across slices, row-wise SGD on the sampled rows.
        Implied by ``sample_rate < 1``. Needs a margin head of softmax form (arcface,
        cosface, combined, normface) and ``optimizer = "sgd"``; runs whole batches.
    sample_rate : float
        Fraction of each slice's classes a step uses (positives always kept, the rest
        uniform negatives), ``0 < r <= 1``; 1.0 without ``partial_fc`` is the replicated
        :class:`gluonfr.nn.NormDense` head.
    loss_warmup_iters : int
        The first N iterations use the margin-free scaled cosine softmax (NormFace, s*cos), then
        the chosen loss takes over in the same run (gluon-face's MobileFaceNet recipe).
    data_dir : str
        Folder with ``train.rec``, ``train.idx``, ``property`` and the validation ``.bin`` files.
    batch_size : int
        Samples per device per iteration; the global batch is this times the number of devices
        (times the number of workers when distributed).
    micro_batch : int or None
        When > 0, each device runs its batch in chunks of this many samples, accumulating the
        gradients before the one optimiser step: the memory of a chunk-sized step for the
        update of the whole batch. The result is that of more devices with a chunk each
        (BatchNorm statistics are per chunk, as they are per device). 0: the whole batch.
        ``None`` (default): chunks of :data:`CPU_MICRO_BATCH` samples on CPUs, where they
        measured faster and at a fraction of the memory (see :meth:`chunks_per_device`), and
        whole batches on GPUs.
    ctx : str
        Devices, e.g. ``"cpu:0"``, ``"cpu:0,cpu:1"``, ``"gpu:0,gpu:1"`` or bare GPU ids
        ``"0,1"`` (see :func:`gluonfr.utils.context.parse_ctx`); ``gpus`` overrides it.
    gpus : str or None
        GPU ids shorthand, e.g. ``"0,1,2,3"``.
    kvstore : str
        ``device``, ``local``, ``nccl``, ``dist_sync`` or ``dist_device_sync``.
    dist_timeout : float
        Distributed runs: a worker that makes no progress for this many seconds (another
        worker died, or hangs) logs an error and exits with status 3 instead of waiting for
        ever; 0 turns it off. Must exceed rank 0's verification time.
    num_workers : int
        Data-loading worker processes (0 decodes in the training process).
    skip_corrupt : int
        Replace up to N distinct corrupt records by the next readable one, logging their
        keys (0: the first corrupt record stops the run).
    strict_data : bool
        Treat the JPEG decoder's corrupt-data warnings as errors (such images decode to
        partly wrong pixels; with ``skip_corrupt`` they are skipped).
    optimizer : str
        Any ``mx.optimizer`` name (``sgd``, ``nag``, ``adam``, ...).
    lr, momentum, wd : float
        Base learning rate, momentum (sgd / nag only), weight decay.
    no_wd : bool
        No weight decay on BatchNorm gamma/beta, biases and PReLU slopes.
    head_wd_mult : float
        Weight-decay multiplier of the class centres (insightface's ``fc7_wd_mult``,
        ``--fc-wd-mult``).
    head_lr_mult : float
        Learning-rate multiplier of the class centres (``fc7_lr_mult``, ``--fc-lr-mult``).
    clip_grad : float
        When > 0, the global L2 norm of the gradient (of the mean loss over the global batch,
        all parameters together) is clipped to this value before each update.
    lr_mode : str
        ``step``, ``cosine`` or ``poly`` after the linear warmup.
    lr_steps : list of int
        Absolute iterations at which ``step`` multiplies the lr by ``lr_factor``.
    lr_factor, lr_power, target_lr : float
        Step factor, poly power, final lr of cosine / poly.
    warmup_iters : int
        Linear lr warmup from ``warmup_lr`` to ``lr``.
    max_iters, epochs : int
        Length of the run; ``epochs`` converts to iterations from the dataset size when
        ``max_iters`` is 0.
    val_targets : list of str
        ``<name>.bin`` files in ``data_dir`` to verify on; missing ones are skipped with a warning.
    val_interval, val_batch_size : int
        Verification every N iterations (and at the end); 0 turns it off.
    val_flip : bool
        Flip-sum embeddings for verification (insightface's "Accuracy-Flip").
    save_dir : str
        Checkpoints, ``log.txt`` and (by default) the TensorBoard logs.
    save_interval, keep_last : int
        A checkpoint every N iterations (and at the end); the last K are kept plus the best.
    resume : str or None
        ``"latest"`` (newest checkpoint in ``save_dir``) or the path of a checkpoint's
        ``.json`` / ``.params`` file.
    overwrite : bool
        Start a fresh run in a ``save_dir`` that holds another run's checkpoints (they are
        deleted first). Without it (and without ``resume``) such a folder is refused.
    pretrained_backbone : str or None
        Weights to start the backbone from: ``NAME`` or ``NAME:TAG`` of stored weights
        (``gluonfr-import``/``publish_model``; their constructor arguments are used too) or
        a backbone ``.params`` path. The loading is skipped when resuming.
    hybridize : bool
        Hybridize backbone and head (with ``static_alloc`` / ``static_shape`` on GPUs).
    dtype : str
        ``float32``, or ``float16`` (GPU only, MXNet AMP with dynamic loss scaling).
    seed : int
        Seeds initialisation, data order, augmentation and dropout.
    log_interval : int
        Loss, accuracy, speed and lr every N iterations (the only host syncs of the loop).
    tensorboard : str
        TensorBoard log dir; ``"auto"`` = ``save_dir/tensorboard``, ``""`` turns it off.
    flip_augment : bool
        Random horizontal flips of training images.
    progress : bool
        Show a tqdm progress bar on the console.
    """

    model: str = "mobilefacenet"
    embedding_size: Optional[int] = None
    input_size: int = 112
    loss: str = "arcface"
    margin_s: Optional[float] = None
    margin_m: Optional[float] = None
    loss_kwargs: dict = field(default_factory=dict)
    aux_loss: Optional[str] = None
    aux_kwargs: dict = field(default_factory=dict)
    sampler: str = "random"
    pk_p: int = 0
    pk_k: int = 0
    margin_m1: float = 1.0
    margin_m2: float = 0.3
    margin_m3: float = 0.2
    partial_fc: bool = False
    sample_rate: float = 1.0
    loss_warmup_iters: int = 0
    data_dir: str = os.path.join("data", "faces_emore")
    batch_size: int = 64
    micro_batch: Optional[int] = None
    ctx: str = "cpu:0"
    gpus: Optional[str] = None
    kvstore: str = "device"
    dist_timeout: float = 1800.0
    num_workers: int = 2
    skip_corrupt: int = 0
    strict_data: bool = False
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    wd: float = 5e-4
    no_wd: bool = False
    head_wd_mult: float = 1.0
    head_lr_mult: float = 1.0
    clip_grad: float = 0.0
    lr_mode: str = "step"
    lr_steps: List[int] = field(default_factory=list)
    lr_factor: float = 0.1
    lr_power: float = 2.0
    target_lr: float = 0.0
    warmup_iters: int = 0
    warmup_lr: float = 0.0
    max_iters: int = 0
    epochs: int = 0
    val_targets: List[str] = field(default_factory=lambda: ["lfw", "cfp_fp", "agedb_30"])
    val_interval: int = 2000
    val_batch_size: int = 64
    val_flip: bool = True
    save_dir: str = os.path.join("runs", "train")
    save_interval: int = 2000
    keep_last: int = 3
    resume: Optional[str] = None
    overwrite: bool = False
    pretrained_backbone: Optional[str] = None
    hybridize: bool = True
    dtype: str = "float32"
    seed: int = 0
    log_interval: int = 50
    tensorboard: str = "auto"
    flip_augment: bool = True
    progress: bool = True

    def __post_init__(self):
        if self.loss in get_loss_list(HEAD_KINDS):
            defaults = _head_defaults(self.loss)
            scale, margin = scale_and_margin_names(self.loss)
            if self.margin_s is None:
                self.margin_s = float(defaults.get(scale, 64.0))
            if self.margin_m is None and margin in defaults:
                self.margin_m = float(defaults[margin])
        self.loss_kwargs = dict(self.loss_kwargs or {})
        self.aux_kwargs = dict(self.aux_kwargs or {})
        self.lr_steps = [int(s) for s in self.lr_steps]
        self.val_targets = [t for t in self.val_targets if t]
        self.validate()

    # -- checks -------------------------------------------------------------------------------
    def validate(self):
        """Raise ``ValueError`` naming the first field with an impossible value."""
        def bad(name, expected):
            raise ValueError(f"TrainConfig.{name}={getattr(self, name)!r}: expected {expected}")

        heads = get_loss_list(HEAD_KINDS)
        if self.loss not in heads:
            try:
                get_loss_class(self.loss)
            except ValueError as err:  # names the close matches
                bad("loss", f"a classification head ({err})")
            bad("loss", "a classification head (not an auxiliary or pair loss): "
                + ", ".join(heads))
        if self.aux_loss is not None:
            if self.aux_loss not in get_loss_list("auxiliary"):
                get_loss_class(self.aux_loss)  # an unknown name: the close matches
                bad("aux_loss", "an auxiliary loss: " + ", ".join(get_loss_list("auxiliary")))
        if self.sampler not in ("random", "pk"):
            bad("sampler", "random or pk")
        if self.sampler == "pk":
            devices = len([c for c in self.ctx_spec.split(",") if c.strip()])
            if self.pk_p < 1 or self.pk_k < 1:
                bad("pk_p", "P >= 1 identities and K >= 1 images (--p, --k) with --sampler pk")
            if self.pk_p * self.pk_k != self.batch_size * devices:
                bad("pk_p", f"P x K = the global batch {self.batch_size} x {devices} device(s)"
                    f", got {self.pk_p} x {self.pk_k}")
            chunk = self.batch_size // self.chunks_per_device()
            if chunk % self.pk_k:
                bad("pk_k", f"a divisor of each device's (micro-)batch of {chunk}, so that no "
                    "identity is split between devices")
        if self.lr_mode not in LR_MODES:
            bad("lr_mode", "one of " + ", ".join(LR_MODES))
        if self.kvstore not in KVSTORES:
            bad("kvstore", "one of " + ", ".join(KVSTORES))
        if self.dtype not in ("float32", "float16"):
            bad("dtype", "float32 or float16")
        for name in ("batch_size", "log_interval"):
            if getattr(self, name) < 1:
                bad(name, "a positive integer")
        for name in ("max_iters", "epochs", "warmup_iters", "loss_warmup_iters", "val_interval",
                     "save_interval", "num_workers", "skip_corrupt", "clip_grad", "head_lr_mult",
                     "head_wd_mult", "dist_timeout"):
            if getattr(self, name) < 0:
                bad(name, "an integer >= 0")
        if self.micro_batch is not None and (
                self.micro_batch < 0
                or (self.micro_batch and self.batch_size % self.micro_batch)):
            bad("micro_batch", f"None, 0 or a divisor of batch_size={self.batch_size}")
        if not 0.0 < self.sample_rate <= 1.0:
            bad("sample_rate", "a fraction in (0, 1]")
        if self.uses_partial_fc:
            if self.optimizer != "sgd":
                bad("optimizer", "sgd with --partial-fc / --sample-rate < 1 (the class "
                    "centres take a row-wise SGD update)")
            if self.clip_grad:
                bad("clip_grad", "0 with --partial-fc / --sample-rate < 1 (the class centres "
                    "are updated outside the clipped gradient)")
            if self.aux_loss is not None:
                bad("aux_loss", "None with --partial-fc / --sample-rate < 1")
            if self.chunks_per_device() > 1:
                bad("micro_batch", "0 with --partial-fc / --sample-rate < 1 (one sampled "
                    "softmax per batch)")
        if self.keep_last < 1:
            bad("keep_last", "at least 1")
        if self.max_iters == 0 and self.epochs == 0:
            bad("max_iters", "a positive iteration count (or set epochs)")
        if self.lr <= 0:
            bad("lr", "a positive learning rate")
        if self.margin_s is not None and self.margin_s <= 0:
            bad("margin_s", "a positive scale")
        if self.lr_mode == "step" and sorted(self.lr_steps) != self.lr_steps:
            bad("lr_steps", "increasing iteration numbers")
        if self.max_iters and self.warmup_iters >= self.max_iters:
            bad("warmup_iters", f"fewer than max_iters={self.max_iters}")
        if self.input_size < 16 or self.input_size % 16:
            bad("input_size", "a positive multiple of 16 (112 for the published models)")
        self.contexts()  # a malformed --ctx / --gpus fails here, naming the item
        if self.dtype == "float16" and not self.uses_gpu:
            bad("dtype", "float32 on CPU (float16 training needs GPUs: --gpus / --ctx gpu:0)")

    # -- derived values -------------------------------------------------------------------------
    @property
    def ctx_spec(self):
        """The device spec actually used: ``gpus`` when given, else ``ctx``."""
        if self.gpus:
            return ",".join(f"gpu:{g.strip()}" for g in str(self.gpus).split(",") if g.strip())
        return self.ctx

    def contexts(self, check=False):
        """The devices of the run (:func:`~gluonfr.utils.context.parse_ctx` of :attr:`ctx_spec`).

        ``check=True`` also requires the GPUs to exist (the training loop does).
        """
        from ..utils.context import parse_ctx

        return parse_ctx(self.ctx_spec, check=check)

    @property
    def uses_gpu(self):
        """Whether the run trains on GPUs: the one answer the defaults and checks use.

        Decided from the parsed device list, so ``gpu:0``, ``--gpus 0`` and bare ids
        (``--ctx 0,1``) all count.
        """
        return any(c.device_type == "gpu" for c in self.contexts())

    @property
    def uses_partial_fc(self):
        """Whether the head is :class:`gluonfr.nn.PartialFC` (``partial_fc`` or r < 1)."""
        return bool(self.partial_fc) or self.sample_rate < 1.0

    def chunks_per_device(self):
        """Micro-batches each device's batch runs as: ``batch_size / micro_batch``.

        ``micro_batch=None`` chooses: on GPUs and with Partial FC 1 (whole batches); on
        CPUs chunks of the
        largest divisor of ``batch_size`` between 8 and :data:`CPU_MICRO_BATCH`, and whole
        batches when there is none (BatchNorm over fewer than 8 samples is too noisy).
        """
        if self.micro_batch is not None:
            return self.batch_size // self.micro_batch if self.micro_batch else 1
        if self.uses_gpu or self.uses_partial_fc or self.batch_size <= CPU_MICRO_BATCH:
            return 1
        for size in range(CPU_MICRO_BATCH, 7, -1):
            if self.batch_size % size == 0:
                return self.batch_size // size
        return 1

    @property
    def tensorboard_dir(self):
        """Where TensorBoard events go, or ``None`` when turned off."""
        if not self.tensorboard or self.tensorboard.lower() in ("none", "off", "false"):
            return None
        if self.tensorboard == "auto":
            return os.path.join(self.save_dir, "tensorboard")
        return self.tensorboard

    @property
    def model_tag(self):
        """File-name prefix of checkpoints: the model name, or the factory's function name."""
        return self.model.rsplit(":", 1)[-1].replace(".", "_")

    def to_dict(self):
        return dataclasses.asdict(self)

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d):
        """Build from a dict (unknown keys are an error naming them)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {', '.join(unknown)}")
        return cls(**d)


def _head_defaults(loss):
    """Default constructor values of a registered head (``s``, ``m``, ...), through its bases."""
    import inspect

    out = {}
    factory = get_loss_class(loss)
    for klass in reversed(getattr(factory, "__mro__", (factory,))):
        init = klass.__dict__.get("__init__") if isinstance(klass, type) else klass
        if init is None:
            continue
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            continue
        out.update({p.name: p.default for p in params if p.default is not p.empty
                    and isinstance(p.default, (int, float)) and not isinstance(p.default, bool)})
    return out


# -- command line ------------------------------------------------------------------------------
def parse_kwargs(text):
    """``"t=0.2,k=3,easy_margin=true"`` -> ``{"t": 0.2, "k": 3, "easy_margin": True}``."""
    if isinstance(text, dict):
        return dict(text)
    out = {}
    for item in str(text).split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"expected NAME=VALUE pairs separated by commas, "
                                             f"got {item!r} in {text!r}")
        value = value.strip()
        low = value.lower()
        if low in ("true", "false"):
            out[key.strip()] = low == "true"
            continue
        for cast in (int, float):
            try:
                out[key.strip()] = cast(value)
                break
            except ValueError:
                pass
        else:
            out[key.strip()] = value
    return out


def _int_list(text):
    text = str(text).strip()
    if not text:
        return []
    try:
        return [int(float(s)) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated iterations like 100000,160000, got {text!r}") from None


def _str_list(text):
    return [s.strip() for s in str(text).split(",") if s.strip()]


#: Attribute of a parsed namespace listing the fields set by a flag on the command line.
_EXPLICIT = "_gluonfr_explicit_fields"
_RECORDING = {}


def _record_explicit(action):
    """Make ``action`` note its field in the namespace when its flag is given.

    ``--config FILE`` values are overridden by the flags a person typed, including a flag
    whose value equals the built-in default; argparse alone cannot tell those apart.
    """
    base = type(action)
    if base not in _RECORDING:
        def __call__(self, parser, namespace, values, option_string=None):
            base.__call__(self, parser, namespace, values, option_string)
            seen = set(getattr(namespace, _EXPLICIT, ()))
            seen.add(self.dest)
            setattr(namespace, _EXPLICIT, seen)

        _RECORDING[base] = type("Recorded" + base.__name__, (base,), {"__call__": __call__})
    action.__class__ = _RECORDING[base]
    return action


def recipe_names():
    """Names of the shipped recipes (``--config NAME``)."""
    if not os.path.isdir(RECIPES_DIR):
        return []
    return sorted(f[:-5] for f in os.listdir(RECIPES_DIR) if f.endswith(".toml"))


def _read_toml(path):
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        try:
            import tomli as tomllib
        except ImportError:
            raise ValueError(f"--config {path}: reading TOML needs Python 3.11 or the tomli "
                             "package (pip install tomli); or write the file as JSON") from None
    with open(path, "rb") as f:
        try:
            return tomllib.load(f)
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"--config {path}: not valid TOML ({err})") from None


def load_config_file(spec):
    """Field values from a ``--config`` file: a TOML or JSON path, or a shipped recipe name.

    Keys are :class:`TrainConfig` field names (``lr_steps = [100000, 160000]``); an unknown
    key is an error naming the file and the closest field. Returns ``(path, dict)``.
    """
    path = os.fspath(spec)
    if not os.path.isfile(path):
        shipped = os.path.join(RECIPES_DIR, path + ".toml")
        if os.path.sep in path or not os.path.isfile(shipped):
            raise ValueError(f"--config {spec}: no such file, and not a shipped recipe ("
                             + ", ".join(recipe_names()) + ")")
        path = shipped
    if path.endswith(".json"):
        try:
            with open(path, encoding="utf-8") as f:
                values = json.load(f)
        except ValueError as err:
            raise ValueError(f"--config {path}: not valid JSON ({err})") from None
    else:
        values = _read_toml(path)
    if not isinstance(values, dict):
        raise ValueError(f"--config {path}: expected a table of TrainConfig fields")
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    for key in values:
        if key not in names:
            raise ValueError(f"--config {path}: {unknown_name_error('field', key, names)}")
    out = dict(values)
    for key, parse in (("lr_steps", _int_list), ("val_targets", _str_list),
                       ("loss_kwargs", parse_kwargs)):
        if isinstance(out.get(key), str):
            out[key] = parse(out[key])
    return path, out


def add_arguments(parser):
    """Add every :class:`TrainConfig` field to an ``argparse`` parser (``--kebab-case``).

    Also ``--config FILE``: field values from a TOML / JSON file or a shipped recipe name
    (see :func:`load_config_file`); flags given on the command line override the file.
    """
    fields = TrainConfig.__dataclass_fields__
    default = {k: (v.default_factory() if v.default_factory is not dataclasses.MISSING
                   else v.default) for k, v in fields.items()}
    group = parser

    def add(name, *flags, **kw):
        kw.setdefault("default", default[name])
        _record_explicit(group.add_argument(*flags, dest=name, **kw))

    def toggle(name, flag, help_on, help_off, off=None, hidden_off=()):
        # ``off`` names the negative flag when "--no-" + flag would read badly (--no-no-wd);
        # ``hidden_off`` keeps earlier spellings working without listing them in --help
        both = group.add_mutually_exclusive_group()
        _record_explicit(both.add_argument(flag, dest=name, action="store_true", help=help_on))
        _record_explicit(both.add_argument(off or "--no-" + flag[2:], dest=name,
                                           action="store_false", help=help_off))
        for alias in hidden_off:
            _record_explicit(both.add_argument(alias, dest=name, action="store_false",
                                               help=argparse.SUPPRESS))
        parser.set_defaults(**{name: default[name]})

    parser.add_argument("--config", "-c", metavar="FILE|RECIPE",
                        help="TOML/JSON file of TrainConfig fields, or a shipped recipe ("
                             + ", ".join(recipe_names()) + "); flags override it")

    group = parser.add_argument_group("model and loss")
    add("model", "--model", "-n",
        help="model-zoo name or package.module:function (default: %(default)s)")
    add("embedding_size", "--embedding-size", type=int, help="embedding width (model default)")
    add("input_size", "--input-size", type=int,
        help="network input side, a multiple of 16 (default: %(default)s)")
    add("loss", "--loss", metavar="NAME",
        help="classification head: " + ", ".join(get_loss_list(HEAD_KINDS))
        + " (default: %(default)s)")
    add("margin_s", "--margin-s", "-s", type=float,
        help="scale s; alpha for l2softmax (default: the head's, 64 for arcface)")
    add("margin_m", "--margin-m", "-m", type=float,
        help="margin m (default: the head's, 0.5 for arcface, 0.35 for cosface)")
    add("loss_kwargs", "--loss-kwargs", type=parse_kwargs, metavar="NAME=VALUE,...",
        help="further arguments of the head, e.g. t=0.2 (mv_softmax), k=3 "
             "(subcenter_arcface)")
    add("margin_m1", "--margin-m1", type=float, help="combined margin m1")
    add("margin_m2", "--margin-m2", type=float, help="combined margin m2")
    add("margin_m3", "--margin-m3", type=float, help="combined margin m3")
    add("aux_loss", "--aux-loss", metavar="NAME",
        help="extra term beside the head: " + ", ".join(get_loss_list("auxiliary")))
    add("aux_kwargs", "--aux-kwargs", type=parse_kwargs, metavar="NAME=VALUE,...",
        help="arguments of the extra term, e.g. lamda=0.01 or margin=0.3,mining=batch_all")
    toggle("partial_fc", "--partial-fc", "class centres sliced over the devices and workers "
           "(PartialFC; implied by --sample-rate < 1)", "replicated NormDense head (default)")
    add("sample_rate", "--sample-rate", type=float, metavar="R",
        help="Partial FC: fraction of each slice's classes per step (default: %(default)s)")
    add("loss_warmup_iters", "--loss-warmup-iters", type=int,
        help="the first N iterations train with NormFace (s*cos), then --loss")
    add("pretrained_backbone", "--pretrained-backbone", metavar="NAME[:TAG]|PATH",
        help="start the backbone from stored weights (gluonfr-import / gluonfr-publish, "
             "with their constructor arguments) or a .params file; the classifier is new")

    group = parser.add_argument_group("data and devices")
    add("data_dir", "--data-dir", help="train.rec/.idx/property and <target>.bin files")
    add("batch_size", "--batch-size", "-b", type=int, help="per device (default: %(default)s)")
    add("micro_batch", "--micro-batch", type=int,
        help="run each device's batch in chunks of this size, accumulating gradients "
             "(less memory; BatchNorm per chunk). 0: whole batches. Default: chunks of "
             f"{CPU_MICRO_BATCH} on CPUs, whole batches on GPUs")
    add("ctx", "--ctx", help="devices, e.g. cpu:0,cpu:1 or gpu:0,gpu:1 (default: %(default)s)")
    add("gpus", "--gpus", help="GPU ids, e.g. 0,1,2,3 (overrides --ctx)")
    add("kvstore", "--kvstore", choices=KVSTORES, help="default: %(default)s")
    add("dist_timeout", "--dist-timeout", type=float, metavar="SECONDS",
        help="distributed: stop a worker that makes no progress this long (default: "
             "%(default)s; 0 = wait for ever)")
    add("num_workers", "--num-workers", "-j", type=int,
        help="data-loading processes (default: %(default)s)")
    add("sampler", "--sampler", choices=("random", "pk"),
        help="random batches, or pk: P identities x K images (default: %(default)s)")
    add("pk_p", "--p", "--pk-p", type=int, help="identities per batch with --sampler pk")
    add("pk_k", "--k", "--pk-k", type=int, help="images per identity with --sampler pk")
    add("skip_corrupt", "--skip-corrupt", type=int, metavar="N",
        help="skip (and log) up to N corrupt records instead of stopping (default: 0)")
    toggle("strict_data", "--strict-data", "JPEG corrupt-data warnings are errors",
           "decode what libjpeg can, warnings only on stderr (default)")
    toggle("flip_augment", "--flip-augment", "random horizontal flips (default)",
           "no training-time flips")

    group = parser.add_argument_group("optimisation")
    add("optimizer", "--optimizer", help="mx.optimizer name (default: %(default)s)")
    add("lr", "--lr", type=float, help="base learning rate (default: %(default)s)")
    add("momentum", "--momentum", type=float, help="sgd / nag momentum (default: %(default)s)")
    add("wd", "--wd", type=float, help="weight decay (default: %(default)s)")
    toggle("no_wd", "--no-wd", "no weight decay on BN, biases and PReLU",
           "weight decay on every parameter (default)", off="--wd-all",
           hidden_off=("--no-no-wd",))
    add("head_wd_mult", "--head-wd-mult", "--fc-wd-mult", type=float,
        help="weight-decay multiplier of the class centres (insightface fc7 wd mult)")
    add("head_lr_mult", "--head-lr-mult", "--fc-lr-mult", type=float,
        help="learning-rate multiplier of the class centres (default: %(default)s)")
    add("clip_grad", "--clip-grad", type=float, metavar="MAX_NORM",
        help="clip the global gradient L2 norm (of the mean loss) to this; 0 = off")
    add("lr_mode", "--lr-mode", choices=LR_MODES, help="default: %(default)s")
    add("lr_steps", "--lr-steps", type=_int_list, help="iterations, e.g. 100000,160000")
    add("lr_factor", "--lr-factor", type=float, help="step factor (default: %(default)s)")
    add("lr_power", "--lr-power", type=float, help="poly power (default: %(default)s)")
    add("target_lr", "--target-lr", type=float, help="final lr of cosine / poly")
    add("warmup_iters", "--warmup-iters", type=int, help="linear lr warmup iterations")
    add("warmup_lr", "--warmup-lr", type=float, help="lr at the start of the warmup")
    add("max_iters", "--max-iters", type=int, help="iterations to train")
    add("epochs", "--epochs", type=int, help="epochs to train when --max-iters is 0")
    toggle("hybridize", "--hybridize", "static-graph training (default)", "imperative")
    add("dtype", "--dtype", choices=("float32", "float16"), help="default: %(default)s")
    add("seed", "--seed", type=int, help="default: %(default)s")

    group = parser.add_argument_group("validation, checkpoints and logs")
    add("val_targets", "--val-targets", "-t", type=_str_list,
        help="comma list of <name>.bin in --data-dir (default: lfw,cfp_fp,agedb_30)")
    add("val_interval", "--val-interval", type=int, help="0 = off (default: %(default)s)")
    add("val_batch_size", "--val-batch-size", type=int)
    toggle("val_flip", "--val-flip", "flip-sum embeddings (default)", "no flip")
    add("save_dir", "--save-dir", help="checkpoints, log.txt, tensorboard (default: %(default)s)")
    add("save_interval", "--save-interval", type=int, help="default: %(default)s")
    add("keep_last", "--keep-last", type=int,
        help="checkpoints kept besides the best (default: %(default)s)")
    add("resume", "--resume", nargs="?", const="latest",
        help="resume from the latest checkpoint in --save-dir, or from the given one")
    toggle("overwrite", "--overwrite", "start afresh in a --save-dir holding another run "
           "(its checkpoints are deleted)", "refuse a --save-dir with another run (default)")
    add("log_interval", "--log-interval", type=int, help="default: %(default)s")
    add("tensorboard", "--tensorboard",
        help="TensorBoard dir ('auto' = SAVE_DIR/tensorboard, 'none' = off)")
    toggle("progress", "--progress", "tqdm progress bar (default)", "no progress bar")
    return parser


def config_from_args(args):
    """Turn parsed arguments into a :class:`TrainConfig` (errors name the flag).

    With ``--config``, the file's values replace the defaults of every flag not given on
    the command line.
    """
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
              if hasattr(args, f.name)}
    if getattr(args, "config", None):
        path, from_file = load_config_file(args.config)
        explicit = getattr(args, _EXPLICIT, set())
        values.update({k: v for k, v in from_file.items() if k not in explicit})
    try:
        return TrainConfig(**values)
    except ValueError as err:
        msg = str(err)
        for f in dataclasses.fields(TrainConfig):
            prefix = f"TrainConfig.{f.name}="
            if msg.startswith(prefix):
                msg = "--" + f.name.replace("_", "-") + "=" + msg[len(prefix):]
                break
        raise ValueError(msg) from None
