"""Partial FC: the class centres split in contiguous slices over devices and workers, sampled.

The (C, D) class-centre matrix of a cosine head never exists in one place: shard ``g`` of
``S = workers * devices`` shards (``g = rank * devices + device``) owns the rows
``[start, start + num_local)`` with ``num_local = C // S + (g < C % S)`` and
``start = C // S * g + min(g, C % S)`` (insightface's rule). Per step every shard sees the
whole (gathered) batch, keeps the positive classes of that global batch and
``int(sample_rate * num_local)`` classes in all (positives first, the rest uniform negatives
without replacement), and computes the cosines of its sampled rows only. The softmax over
all shards is exact: the row maxima and the sums of exponentials are combined over the
devices of this process, then over workers through a collective, and each shard receives
its exact logit gradient ``p - onehot``.

Only sampled rows take part in a step, and only they are updated: weight decay and momentum
touch the sampled rows only (as insightface's implementation does), with the same
``sgd_mom_update`` kernel MXNet's SGD uses. The classifier and its softmax run in float32
whatever the embeddings' dtype (AMP's float16 backbone included).
"""
import glob
import os

import mxnet as mx
import numpy as np
from mxnet import autograd, nd
from mxnet.gluon import Block

from ..utils.context import as_context_list
from ..utils.fileio import atomic_paths
from .norm_dense import l2_normalize

__all__ = ["PartialFC", "check_partial_fc_loss", "read_classifier_slices", "shard_files",
           "shard_range", "worker_file"]


def shard_range(classes, num_shards, shard):
    """``(start, num_local)`` of shard ``shard`` of ``num_shards`` over ``classes`` rows.

    ``num_local = C // S + (shard < C % S)``, ``start = C // S * shard + min(shard, C % S)``:
    contiguous slices that add up to ``C``, the first ``C % S`` one row longer.
    """
    classes, num_shards, shard = int(classes), int(num_shards), int(shard)
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard {shard} is not in [0, {num_shards})")
    base, extra = divmod(classes, num_shards)
    return base * shard + min(shard, extra), base + (shard < extra)


def worker_file(path, rank):
    """The classifier file worker ``rank`` writes for a checkpoint whose head file is ``path``.

    Rank 0 writes ``path`` itself; rank r > 0 ``<stem>.rank<r><ext>`` beside it.
    """
    if int(rank) == 0:
        return path
    stem, ext = os.path.splitext(path)
    return f"{stem}.rank{int(rank)}{ext}"


def shard_files(path):
    """Every worker's classifier file of the checkpoint whose (rank-0) head file is ``path``."""
    stem, ext = os.path.splitext(path)
    ranks = {}
    for other in glob.glob(glob.escape(stem) + ".rank*" + glob.escape(ext)):
        tail = other[len(stem) + len(".rank"):len(other) - len(ext)]
        if tail.isdigit():
            ranks[int(tail)] = other
    return [path] + [ranks[r] for r in sorted(ranks)]


def read_classifier_slices(paths):
    """The class-centre slices stored in classifier files, checked to tile ``[0, C)``.

    Parameters
    ----------
    paths : str or sequence of str
        Files written by :meth:`PartialFC.save_parameters` (one per worker).

    Returns
    -------
    list of dict
        ``start``, ``num_local``, ``classes``, ``weight`` (numpy (num_local, D)),
        ``momentum`` (numpy or ``None``), ``file``, sorted by ``start``.

    Raises
    ------
    ValueError
        A file that is not a classifier file, slices of different class counts or widths,
        a gap, an overlap, or slices that do not add up to the class count (each message
        names the file(s) concerned).
    """
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not paths:
        raise ValueError("read_classifier_slices: no classifier file given")
    slices = []
    for path in paths:
        try:
            arrays = nd.load(str(path))
        except mx.MXNetError as err:
            raise ValueError(f"{path}: not a readable classifier file "
                             f"({str(err).splitlines()[0]})") from None
        keys = [k for k in arrays if isinstance(arrays, dict) and k.endswith(".range")]
        if not keys:
            raise ValueError(f"{path}: holds no Partial FC class-centre slice (expected "
                             "'shard<g>.range' / '.weight' entries)")
        for key in keys:
            name = key[:-len(".range")]
            start, num, classes = (int(v) for v in arrays[key].asnumpy())
            if name + ".weight" not in arrays:
                raise ValueError(f"{path}: slice {name} has a range but no weight")
            weight = arrays[name + ".weight"].asnumpy()
            if weight.ndim != 2 or weight.shape[0] != num:
                raise ValueError(f"{path}: slice {name} claims {num} rows from {start}, its "
                                 f"weight is {weight.shape}")
            mom = arrays.get(name + ".momentum")
            slices.append({"start": start, "num_local": num, "classes": classes,
                           "weight": weight, "file": str(path),
                           "momentum": None if mom is None else mom.asnumpy()})
    slices.sort(key=lambda s: s["start"])
    classes, width = slices[0]["classes"], slices[0]["weight"].shape[1]
    end = 0
    for s in slices:
        if s["classes"] != classes or s["weight"].shape[1] != width:
            raise ValueError(f"{s['file']}: a slice of {s['classes']} classes x "
                             f"{s['weight'].shape[1]}, {slices[0]['file']} has {classes} x "
                             f"{width}: not the same classifier")
        if s["start"] != end:
            what = "overlaps" if s["start"] < end else "leaves a gap before"
            raise ValueError(f"{s['file']}: its slice [{s['start']}, "
                             f"{s['start'] + s['num_local']}) {what} the rows "
                             f"[0, {end}) of the slices before it (files: "
                             f"{', '.join(sorted({x['file'] for x in slices}))})")
        end = s["start"] + s["num_local"]
    if end != classes:
        raise ValueError(f"the slices of {', '.join(sorted({x['file'] for x in slices}))} "
                         f"cover rows [0, {end}) of {classes} classes: a worker's file is "
                         "missing")
    if len({s["momentum"] is None for s in slices}) > 1:
        missing = [s["file"] for s in slices if s["momentum"] is None]
        raise ValueError(f"{missing[0]}: a slice without momentum rows, others have them")
    return slices


class PartialFC(Block):
    """A cosine classifier sharded over devices and workers, with class sampling.

    Parameters
    ----------
    classes : int
        C, the number of classes.
    in_units : int
        D, the embedding size.
    sample_rate : float, default 1.0
        Fraction of each shard's classes used per step (``0 < r <= 1``); 1 is plain model
        parallelism (every class, exact replicated-head equivalent).
    ctx : Context or list of Context, optional
        The devices of this process that hold a slice each (default: the current context).
    dtype : str, default 'float32'
        The classifier's dtype: 'float32' (also under float16 training, as arcface_torch
        keeps its classifier and softmax in float32) or 'float64'.
    collective : Collective, optional
        ``gluonfr.engine.collective.Collective`` of a distributed job; ``None`` is one
        process (rank 0 of 1). Per multi-shard step :meth:`forward_backward` makes these
        calls on it, in this order: ``all_gather(embeddings)`` (n, D), ``all_gather(labels)``
        (n,) int32, ``all_reduce(maxima, 'max')`` (2, N), ``all_reduce(sums, 'sum')`` (3, N),
        ``all_reduce(embedding gradient, 'sum')`` (N, D), with n the worker's batch and N the
        global batch (every worker must have the same n). Nothing else crosses workers: each
        worker's slice never goes through a parameter server.
    weight_initializer : Initializer, default ``Normal(0.01)``
        Each slice is initialised on its device (as :class:`NormDense`).
    seed : int, default 0
        Negative sampling draws from ``(seed, num_update, shard)``: a step's sample is the
        same whether the run continued or resumed with the same shards.

    Notes
    -----
    Single shard (one device, one worker): ``pfc(x, label) -> (cos, label_in_sample)``
    under ``autograd.record()``, any loss on the cosines, ``backward()``, then
    :meth:`update`. With ``sample_rate=1`` this is :class:`NormDense` exactly.

    Several shards: :meth:`forward_backward` with a margin loss that has
    ``margin_logits`` (the heads of :class:`gluonfr.loss.CombinedMarginLoss`: arcface,
    cosface, combined, normface), then ``autograd.backward(embeddings, grads)``, then
    :meth:`update`. A step waits for the host only when ``sample_rate < 1`` and the labels
    come from other workers (the sample is drawn on the host from the gathered labels).

    Examples
    --------
    >>> ctx = [mx.cpu(0), mx.cpu(1)]
    >>> pfc = PartialFC(1000, 16, sample_rate=0.1, ctx=ctx)
    >>> loss = gluonfr.loss.ArcFaceLoss()
    >>> x = [mx.nd.random.normal(shape=(4, 16), ctx=c) for c in ctx]
    >>> for e in x:
    ...     e.attach_grad()
    >>> with autograd.record():
    ...     emb = [e * 1 for e in x]      # the backbone's output
    >>> losses, hits, grads = pfc.forward_backward(emb, np.arange(8), loss)
    >>> autograd.backward(emb, head_grads=grads)   # the backbone's backward
    >>> pfc.update(lr=0.1, wd=5e-4, momentum=0.9, rescale_grad=1 / 8)
    >>> pfc.last_num_sampled, [r for r in pfc.ranges]
    (100, [(0, 500), (500, 500)])
    """

    def __init__(self, classes, in_units, sample_rate=1.0, ctx=None, dtype="float32",
                 collective=None, weight_initializer=None, seed=0, **kwargs):
        super().__init__(**kwargs)
        if int(classes) != classes or int(classes) <= 0:
            raise ValueError(f"PartialFC: classes must be a positive integer, got {classes!r}")
        if int(in_units) != in_units or int(in_units) <= 0:
            raise ValueError(f"PartialFC: in_units must be a positive integer, got "
                             f"{in_units!r}")
        rate = float(sample_rate)
        if not 0.0 < rate <= 1.0:
            raise ValueError(f"PartialFC: sample_rate must be in (0, 1], got {sample_rate!r}")
        if str(dtype) not in ("float32", "float64"):
            raise ValueError(f"PartialFC: dtype must be 'float32' or 'float64' (the classifier "
                             f"and its softmax stay float32 under float16 training), got "
                             f"{dtype!r}")
        self.classes, self.in_units, self.sample_rate = int(classes), int(in_units), rate
        self.dtype = str(dtype)
        self.ctx = as_context_list(ctx if ctx is not None else mx.current_context())
        self.collective = collective
        self.rank = int(collective.rank) if collective is not None else 0
        self.num_workers = int(collective.num_workers) if collective is not None else 1
        self.num_shards = self.num_workers * len(self.ctx)
        if self.classes < self.num_shards:
            raise ValueError(f"PartialFC: {self.classes} classes cannot be split over "
                             f"{self.num_shards} shards")
        if self.classes >= 2 ** 31:
            raise ValueError(f"PartialFC: {self.classes} classes: class ids travel as int32")
        self.seed = int(seed)
        self.num_update = 0
        init = weight_initializer or mx.init.Normal(0.01)
        self.ranges, self.weight, self.momentum = [], [], []
        for d, c in enumerate(self.ctx):
            start, num = shard_range(self.classes, self.num_shards, self.shard_index(d))
            self.ranges.append((start, num))
            w = nd.zeros((num, self.in_units), ctx=c, dtype=self.dtype)
            init(mx.init.InitDesc(f"{self.prefix}weight"), w)
            self.weight.append(w)
            self.momentum.append(None)  # allocated by the first update with momentum
        self._last = None
        self.last_num_sampled = None

    def shard_index(self, device):
        """Global shard index of this process's device ``device``: ``rank * devices + d``."""
        return self.rank * len(self.ctx) + int(device)

    def __repr__(self):
        return (f"PartialFC({self.classes}, in_units={self.in_units}, sample_rate="
                f"{self.sample_rate}, shards={self.num_shards})")

    # -- sampling --------------------------------------------------------------------------
    def _sample(self, labels):
        """Per local shard: ``(sampled row indices or None for all, labels in the sample)``.

        ``labels`` are the global batch's class ids (numpy int64); a label whose class lives
        in another shard is -1 there.
        """
        out = []
        for d, (start, num) in enumerate(self.ranges):
            inside = (labels >= start) & (labels < start + num)
            local = np.full(labels.shape, -1, dtype=np.int64)
            pos = np.unique(labels[inside] - start)
            keep = max(int(self.sample_rate * num), pos.size)
            if keep >= num:
                local[inside] = labels[inside] - start
                out.append((None, local))
                continue
            rng = np.random.default_rng([self.seed, self.num_update, self.shard_index(d)])
            # the `keep` largest of iid uniform scores, positives scored above every one:
            # the positives plus a uniform draw without replacement from the other rows
            score = rng.random(num)
            score[pos] = 2.0
            index = np.sort(np.argpartition(score, num - keep)[num - keep:])
            local[inside] = np.searchsorted(index, labels[inside] - start)
            out.append((index, local))
        return out

    def _leaf(self, d, index):
        """``(rows, index)``: the rows of shard ``d`` a step uses, as an array that receives
        their gradient, and their indices on the device (``None``: every row, the weight
        itself, whose gradient buffer is allocated once)."""
        if index is None:
            rows = self.weight[d]
            if rows.grad is None:
                rows.attach_grad()
            return rows, None
        at = nd.array(index, ctx=self.ctx[d], dtype="int64")
        with autograd.pause():
            rows = nd.take(self.weight[d], at)
        rows.attach_grad()
        return rows, at

    def _cosines(self, x, rows):
        half = x.dtype == np.float16
        xn = l2_normalize(nd, x, half).astype(self.dtype, copy=False)
        return nd.FullyConnected(xn, l2_normalize(nd, rows), no_bias=True,
                                 num_hidden=rows.shape[0], flatten=True)

    # -- one shard -------------------------------------------------------------------------
    def forward(self, x, label):
        """Cosines of the sampled classes and the labels remapped into them (one shard).

        Parameters
        ----------
        x : NDArray
            (N, D) embeddings (recorded by autograd for training).
        label : NDArray or numpy.ndarray
            (N,) class ids in ``[0, C)``.

        Returns
        -------
        cos : NDArray
            (N, K) cosines, K the sampled classes (C at ``sample_rate=1``), in ``dtype``.
        label : NDArray
            (N,) positions of the labels among the K sampled classes (float32; ``label``
            itself at ``sample_rate=1``).
        """
        if self.num_shards != 1:
            raise ValueError(f"PartialFC over {self.num_shards} shards: call "
                             "forward_backward(embeddings, labels, loss), the softmax spans "
                             "the shards")
        if self.sample_rate == 1.0:  # every class: the labels stay as they are (no host wait)
            index = None
            local = label if isinstance(label, nd.NDArray) else nd.array(label, ctx=x.context)
        else:
            ((index, local),) = self._sample(_host_labels(label, self.classes))
            local = nd.array(local, ctx=x.context, dtype="float32")
        rows, at = self._leaf(0, index)
        self._last = [(at, rows)]
        self.last_num_sampled = rows.shape[0]
        return self._cosines(x, rows), local

    # -- several shards --------------------------------------------------------------------
    def forward_backward(self, embeddings, labels, loss, embedding_grad_scale=1.0):
        """Loss and gradients of a step over every shard (the exact cross-shard softmax).

        The shards' weight gradients are kept for :meth:`update`; the gradient with respect
        to the embeddings is returned for ``autograd.backward(embeddings, grads)``.

        Parameters
        ----------
        embeddings : list of NDArray
            This worker's (n_d, D) embeddings, one per device of ``ctx`` (any dtype).
        labels : NDArray or numpy.ndarray
            (sum n_d,) class ids of this worker's batch, in device order.
        loss : CombinedMarginLoss
            A margin head with ``margin_logits`` (see :func:`check_partial_fc_loss`).
        embedding_grad_scale : float
            Multiplies the returned embedding gradients only (AMP's loss scale).

        Returns
        -------
        losses, hits, grads : lists of NDArray, one per device
            (n_d,) per-sample losses (float32), (n_d,) 1 where the highest sampled cosine
            is the label's, (n_d, D) ``dL/dx`` of the summed loss in the embeddings' dtype.
        """
        check_partial_fc_loss(loss)
        embeddings = list(embeddings)
        if len(embeddings) != len(self.ctx):
            raise ValueError(f"PartialFC.forward_backward: {len(embeddings)} embedding arrays "
                             f"for {len(self.ctx)} devices")
        home = self.ctx[0]
        coll = self.collective
        sizes = [e.shape[0] for e in embeddings]
        if len(labels) != sum(sizes):
            raise ValueError(f"PartialFC.forward_backward: {len(labels)} labels for "
                             f"{sum(sizes)} embeddings")
        x = nd.concat(*[e.detach().as_in_context(home).astype(self.dtype, copy=False)
                        for e in embeddings], dim=0)
        host = not isinstance(labels, nd.NDArray)
        if coll is not None and self.num_workers > 1:
            x = coll.all_gather(x)
            y = coll.all_gather(nd.array(_host_labels(labels, self.classes), ctx=home,
                                         dtype="int32") if host else
                                labels.as_in_context(home).astype("int32"))
            host = False
        else:
            y = labels
        n_all = x.shape[0]
        if n_all != self.num_workers * sum(sizes):
            raise ValueError(f"PartialFC.forward_backward: the gathered batch has {x.shape[0]} "
                             f"rows, not {self.num_workers} workers x {sum(sizes)}: every "
                             "worker needs the same batch size")
        sampled = None
        if self.sample_rate < 1.0:
            sampled = self._sample(_host_labels(y, self.classes))  # the one host wait
        elif host:
            y = nd.array(_host_labels(y, self.classes), ctx=home, dtype="int32")
        shard = []
        for d, c in enumerate(self.ctx):
            start, num = self.ranges[d]
            xd = x.as_in_context(c)
            xd.attach_grad()
            if sampled is None:
                yd = y.as_in_context(c).astype("float64")  # exact for any class id
                inside = (yd >= start) * (yd < start + num)
                local = nd.where(inside, yd - start, -nd.ones_like(yd)).astype("float32")
                index = None
            else:
                index, local_np = sampled[d]
                local = nd.array(local_np, ctx=c, dtype="float32")
            rows, at = self._leaf(d, index)
            with autograd.record():
                cos = self._cosines(xd, rows)
                logits = loss.margin_logits(cos, local)
            valid = local >= 0
            pick = nd.clip(local, 0, rows.shape[0] - 1)
            shard.append({"x": xd, "rows": rows, "index": at, "cos": cos, "logits": logits,
                          "valid": valid, "pick": pick})
        self.last_num_sampled = sum(s["rows"].shape[0] for s in shard)
        # row maxima of the logits (a stable softmax) and of the cosines (the accuracy)
        maxima = self._combine([nd.stack(s["logits"].max(axis=1), s["cos"].max(axis=1))
                                for s in shard], "max")
        for s in shard:
            m = maxima.as_in_context(s["x"].context)
            s["exp"] = nd.exp(nd.broadcast_sub(s["logits"], m[0].reshape((-1, 1))))
            s["parts"] = nd.stack(s["exp"].sum(axis=1),
                                  nd.pick(s["logits"], s["pick"], axis=1) * s["valid"],
                                  nd.pick(s["cos"], s["pick"], axis=1) * s["valid"])
        sums = self._combine([s["parts"] for s in shard], "sum")
        weight = getattr(loss, "_weight", None)
        scale = 1.0 if weight is None else float(weight)
        per_sample = (maxima[0] + nd.log(sums[0]) - sums[1]) * scale
        hit = sums[2] >= maxima[1]
        grads = []
        for s in shard:
            c = s["x"].context
            # d loss / d logits = p - onehot, built in the exponentials' buffer: no other
            # (N, K) array; the positive's entry (in its own shard only) is scattered in place
            grad = s["exp"]
            nd.broadcast_div(grad, sums[0].as_in_context(c).reshape((-1, 1)), out=grad)
            rows = nd.arange(n_all, ctx=c, dtype="int64") * s["rows"].shape[0]
            at = rows + s["pick"].astype("int64")
            flat = grad.reshape((-1,))
            flat[at] = flat.take(at) - s["valid"].astype(self.dtype)
            s["logits"].backward(grad * scale if scale != 1.0 else grad)
            grads.append(s["x"].grad.as_in_context(home))
        dx = nd.add_n(*grads) if len(grads) > 1 else grads[0]
        if coll is not None and self.num_workers > 1:
            dx = coll.all_reduce(dx, op="sum")
        self._last = [(s["index"], s["rows"]) for s in shard]
        first = self.rank * sum(sizes)
        losses, hits, dxs = [], [], []
        for e, n in zip(embeddings, sizes):
            part = slice(first, first + n)
            first += n
            losses.append(per_sample[part].astype("float32").as_in_context(e.context))
            hits.append(hit[part].as_in_context(e.context))
            g = dx[part] * embedding_grad_scale if embedding_grad_scale != 1.0 else dx[part]
            dxs.append(g.astype(e.dtype, copy=False).as_in_context(e.context))
        return losses, hits, dxs

    def _combine(self, arrays, op):
        """Elementwise max / sum over this process's shards, then over the workers."""
        home = self.ctx[0]
        out = arrays[0].as_in_context(home)
        for a in arrays[1:]:
            a = a.as_in_context(home)
            out = nd.maximum(out, a) if op == "max" else out + a
        if self.collective is not None and self.num_workers > 1:
            out = self.collective.all_reduce(out, op=op)
        return out

    # -- the row-wise update ---------------------------------------------------------------
    def update(self, lr, wd=0.0, momentum=0.0, rescale_grad=1.0):
        """SGD on the rows the last step used: ``sgd_mom_update`` (MXNet's SGD kernel).

        Rows that were not sampled keep their values and their momentum (no weight decay
        either), as insightface's Partial FC.

        Parameters
        ----------
        lr, wd, momentum : float
        rescale_grad : float
            Gradient factor, ``1 / global batch`` for a summed loss (as ``Trainer.step``).
        """
        if self._last is None:
            raise RuntimeError("PartialFC.update: no step since the last update (call the "
                               "block or forward_backward, then backward, first)")
        kw = dict(lr=float(lr), wd=float(wd), rescale_grad=float(rescale_grad))
        for d, (at, rows) in enumerate(self._last):
            grad = rows.grad
            if momentum and self.momentum[d] is None:
                self.momentum[d] = nd.zeros_like(self.weight[d])
            if at is None:  # rows is the weight itself
                if momentum:
                    nd.sgd_mom_update(rows, grad, self.momentum[d], out=rows,
                                      momentum=float(momentum), **kw)
                else:
                    nd.sgd_update(rows, grad, out=rows, **kw)
                continue
            if momentum:
                mom = nd.take(self.momentum[d], at)
                nd.sgd_mom_update(rows, grad, mom, out=rows, momentum=float(momentum), **kw)
                self.momentum[d][at] = mom
            else:
                nd.sgd_update(rows, grad, out=rows, **kw)
            self.weight[d][at] = rows
        self._last = None
        self.num_update += 1

    def discard_step(self):
        """Forget the last step's gradients without updating (e.g. an AMP-skipped step)."""
        self._last = None

    # -- memory ----------------------------------------------------------------------------
    def memory_bytes(self, batch_size=None):
        """Bytes of this process's centres and momentum, plus the last step's sampled logits.

        ``batch_size`` is the global batch (the logits are (N, sampled) per shard).
        """
        item = np.dtype(self.dtype).itemsize
        total = sum(w.size for w in self.weight) + sum(m.size for m in self.momentum
                                                       if m is not None)
        if batch_size and self.last_num_sampled:
            total += int(batch_size) * self.last_num_sampled
        return total * item

    # -- checkpoints -----------------------------------------------------------------------
    def save_parameters(self, filename, deduplicate=False):
        """Write this process's slices: weight, momentum rows and ``(start, num_local, C)``.

        Any number of such files (one per worker) load into any other sharding with
        :meth:`load_parameters`. The write is atomic.
        """
        arrays = {"meta.num_update": nd.array([self.num_update], dtype="int64")}
        for d, (start, num) in enumerate(self.ranges):
            name = f"shard{self.shard_index(d)}"
            arrays[name + ".range"] = nd.array([start, num, self.classes], dtype="int64")
            arrays[name + ".weight"] = self.weight[d].as_in_context(mx.cpu())
            if self.momentum[d] is not None:
                arrays[name + ".momentum"] = self.momentum[d].as_in_context(mx.cpu())
        with atomic_paths(str(filename)) as (tmp,):
            nd.save(tmp, arrays)

    def load_parameters(self, filename, ctx=None, **kwargs):
        """Load the slices of one or several classifier files, re-sharded to this block.

        Parameters
        ----------
        filename : str or list of str
            Every worker's file of one checkpoint; one path is the rank-0 file and reads the
            ``.rank<r>`` files beside it too (:func:`shard_files`). They must tile ``[0, C)``
            exactly.
        ctx : ignored
            The slices go to this block's own devices.
        """
        files = (shard_files(str(filename)) if isinstance(filename, (str, os.PathLike))
                 else list(filename))
        slices = read_classifier_slices(files)
        if slices[0]["classes"] != self.classes or slices[0]["weight"].shape[1] != self.in_units:
            raise ValueError(f"{files[0]}: a classifier of {slices[0]['classes']} classes x "
                             f"{slices[0]['weight'].shape[1]}, this PartialFC is "
                             f"{self.classes} x {self.in_units}")
        has_mom = slices[0]["momentum"] is not None
        for d, (start, num) in enumerate(self.ranges):
            w, m = [], []
            for s in slices:
                lo, hi = max(start, s["start"]), min(start + num, s["start"] + s["num_local"])
                if lo < hi:
                    w.append(s["weight"][lo - s["start"]:hi - s["start"]])
                    if has_mom:
                        m.append(s["momentum"][lo - s["start"]:hi - s["start"]])
            self.weight[d] = nd.array(np.concatenate(w), ctx=self.ctx[d], dtype=self.dtype)
            self.momentum[d] = (nd.array(np.concatenate(m), ctx=self.ctx[d], dtype=self.dtype)
                                if has_mom else None)
        meta = nd.load(str(files[0])).get("meta.num_update")
        self.num_update = int(meta.asscalar()) if meta is not None else 0
        self._last = None

    def full_weight(self):
        """This process's slices as one numpy array (all C rows with one worker)."""
        return np.concatenate([w.asnumpy() for w in self.weight])

    def set_full_weight(self, weight):
        """Set every local slice from a (C, D) matrix (e.g. a replicated head's centres)."""
        weight = np.asarray(weight)
        if weight.shape != (self.classes, self.in_units):
            raise ValueError(f"PartialFC.set_full_weight: expected ({self.classes}, "
                             f"{self.in_units}), got {weight.shape}")
        for d, (start, num) in enumerate(self.ranges):
            self.weight[d] = nd.array(weight[start:start + num], ctx=self.ctx[d],
                                      dtype=self.dtype)


def check_partial_fc_loss(loss):
    """Refuse a loss that cannot run on slices of the classifier.

    PartialFC combines the softmax across shards itself, so the loss must only build the
    margin-adjusted logits of a slice: :class:`gluonfr.loss.CombinedMarginLoss` and its
    subclasses (arcface, cosface, combined, normface), one centre per class, no extra inputs,
    no running state.
    """
    from ..loss import CombinedMarginLoss  # the losses import nn: not at module level

    name = type(loss).__name__
    if not isinstance(loss, CombinedMarginLoss):
        raise ValueError(f"PartialFC cannot train {name}: it needs a margin head of softmax "
                         "form with margin_logits (arcface, cosface, combined, normface)")
    if type(loss).hybrid_forward is not CombinedMarginLoss.hybrid_forward:
        # its own forward may compute something margin_logits does not know about
        raise ValueError(f"PartialFC cannot train {name}: it overrides the margin head's "
                         "forward")
    if getattr(loss, "centers_per_class", 1) != 1:
        raise ValueError(f"PartialFC cannot train {name}: sub-centres are not sharded")
    if getattr(loss, "needs", ()):
        raise ValueError(f"PartialFC cannot train {name}: it needs {loss.needs}")


def _host_labels(label, classes):
    arr = label.asnumpy() if isinstance(label, nd.NDArray) else np.asarray(label)
    arr = arr.reshape(-1)
    lab = arr.astype(np.int64)
    if (lab != arr).any() or (lab < 0).any() or (lab >= classes).any():
        raise ValueError(f"PartialFC: labels must be integer class ids in [0, {classes})")
    return lab
