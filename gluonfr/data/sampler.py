"""Identity-balanced batches for metric losses: P identities x K images each (PK sampling).

Triplet and other pair losses need several images of each identity in a batch; random
batches over ~85k identities almost never have two. :class:`PKSampler` builds every batch
from P distinct identities with K images each, identity after identity (images of one
identity are consecutive, so splitting a batch over devices in multiples of K keeps
identities whole).

Determinism: the batches of epoch ``e`` are a pure function of ``(seed, e)``, as the
training loader's permutation, so ``--resume`` continues with the same batches.
"""
import numpy as np

__all__ = ["PKSampler"]


class PKSampler:
    """Batches of ``p`` identities x ``k`` images, every identity once per epoch.

    An epoch visits the identities in a random order, ``p`` at a time (the last group is
    filled up with other randomly chosen identities), so it has ``ceil(I / p)`` batches for
    ``I`` identities. An identity with at least ``k`` images gives ``k`` distinct ones; one
    with fewer gives each of its images once and fills up the ``k`` with repeats drawn with
    replacement, since it has no ``k`` distinct images to give.

    Parameters
    ----------
    labels : array-like of int
        The identity label of every dataset index (e.g. ``FaceRecordDataset.labels``).
    p, k : int
        Identities per batch and images per identity.
    seed : int, default 0

    Raises
    ------
    ValueError
        When there are fewer than ``p`` identities, or for non-positive ``p`` / ``k``.
    """

    def __init__(self, labels, p, k, seed=0):
        labels = np.asarray(labels).reshape(-1)
        if int(p) != p or int(p) < 1 or int(k) != k or int(k) < 1:
            raise ValueError(f"PKSampler: p and k must be positive integers, got p={p!r}, "
                             f"k={k!r}")
        self.p, self.k, self.seed = int(p), int(k), int(seed)
        order = np.argsort(labels, kind="stable")
        ids, starts = np.unique(labels[order], return_index=True)
        self.identities = ids
        self.groups = np.split(order.astype(np.int64), starts[1:])
        if len(ids) < self.p:
            raise ValueError(f"PKSampler: p={self.p} identities per batch, but the dataset "
                             f"has only {len(ids)}")

    @classmethod
    def from_dataset(cls, dataset, p, k, seed=0):
        """A sampler over a dataset with ``labels`` (a :class:`FaceRecordDataset`) or items
        ``(image, label)`` (read once)."""
        labels = getattr(dataset, "labels", None)
        if labels is None:
            labels = [int(dataset[i][1]) for i in range(len(dataset))]
        return cls(labels, p, k, seed)

    @property
    def batch_size(self):
        """``p * k``."""
        return self.p * self.k

    def __len__(self):
        """Batches per epoch: ``ceil(identities / p)``."""
        return -(-len(self.groups) // self.p)

    def _rng(self, epoch):
        return np.random.Generator(np.random.PCG64(
            np.random.SeedSequence([self.seed, int(epoch), 0x504B])))

    def epoch_batches(self, epoch):
        """The dataset indices of every batch of ``epoch``: a list of (p*k,) int64 arrays."""
        rng = self._rng(epoch)
        n = len(self.groups)
        order = rng.permutation(n)
        batches = []
        for b in range(len(self)):
            group = list(order[b * self.p:(b + 1) * self.p])
            if len(group) < self.p:  # fill the last group with distinct other identities
                rest = np.setdiff1d(np.arange(n), group)
                group += list(rng.choice(rest, self.p - len(group), replace=False))
            parts = []
            for g in group:
                idx = self.groups[g]
                if len(idx) >= self.k:
                    parts.append(rng.choice(idx, self.k, replace=False))
                else:  # every image once, then repeats drawn with replacement
                    parts.append(np.concatenate([rng.permutation(idx),
                                                 rng.choice(idx, self.k - len(idx))]))
            batches.append(np.concatenate(parts))
        return batches
