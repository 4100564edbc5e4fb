"""Identity-balanced P x K batches: the sampler, the loader with it, and training with it."""
import argparse
import collections
import os

import gluonfr  # noqa: F401
from gluonfr.data import PKSampler, TrainLoader, synthetic
from gluonfr.engine import TrainConfig, add_arguments, config_from_args, train
from gluonfr.engine.head import build_heads
from gluonfr.loss import CenterLoss, TripletLoss

import numpy as np
import pytest

# identity j has COUNTS[j] images, interleaved in the dataset order
COUNTS = [6, 1, 4, 2, 9, 4, 3, 5, 4, 7, 2]
LABELS = np.random.RandomState(0).permutation(np.repeat(np.arange(len(COUNTS)), COUNTS))


def test_every_batch_is_p_identities_times_k_images():
    s = PKSampler(LABELS, p=3, k=4, seed=1)
    assert s.batch_size == 12 and len(s) == 4  # ceil(11 / 3)
    for epoch in range(3):
        for batch in s.epoch_batches(epoch):
            assert batch.shape == (12,)
            ids = LABELS[batch].reshape(3, 4)  # identity after identity, K each
            assert (ids == ids[:, :1]).all() and len(set(ids[:, 0])) == 3


def test_identities_with_fewer_than_k_images_repeat_and_the_others_never_do():
    s = PKSampler(LABELS, p=3, k=4, seed=2)
    for epoch in range(5):
        for batch in s.epoch_batches(epoch):
            for block in batch.reshape(3, 4):
                ident = LABELS[block[0]]
                if COUNTS[ident] >= 4:
                    assert len(set(block)) == 4  # without replacement
                else:  # all its images, some twice
                    assert set(block) == set(np.flatnonzero(LABELS == ident))


def test_an_epoch_covers_every_identity_and_depends_only_on_seed_and_epoch():
    s = PKSampler(LABELS, p=3, k=2, seed=3)
    for epoch in range(4):
        seen = collections.Counter(LABELS[np.concatenate(s.epoch_batches(epoch))[::2]])
        assert set(seen) == set(range(len(COUNTS)))
    again = PKSampler(LABELS, p=3, k=2, seed=3)
    for a, b in zip(s.epoch_batches(2), again.epoch_batches(2)):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(s.epoch_batches(0), s.epoch_batches(1)))
    with pytest.raises(ValueError, match="only 11"):
        PKSampler(LABELS, p=12, k=2)
    with pytest.raises(ValueError, match="positive integers"):
        PKSampler(LABELS, p=2, k=0)


class _Faces:
    """A tiny in-memory dataset: the label drawn on the image."""
    image_size = (8, 8)
    num_classes = len(COUNTS)

    def __len__(self):
        return len(LABELS)

    def __getitem__(self, i):
        return np.full((8, 8, 3), i % 256, dtype=np.uint8), int(LABELS[i])


def test_loader_yields_the_sampler_batches():
    sampler = PKSampler(LABELS, p=2, k=3, seed=4)
    loader = TrainLoader(_Faces(), 6, batch_sampler=sampler, seed=4)
    assert len(loader) == len(sampler) == 6
    want = sampler.epoch_batches(1)
    for b, (data, label) in enumerate(loader.iter_epoch(1, start_batch=2)):
        np.testing.assert_array_equal(label.asnumpy(), LABELS[want[b + 2]])
        np.testing.assert_array_equal(data.asnumpy()[:, 0, 0, 0], want[b + 2] % 256)
        np.testing.assert_array_equal(loader.batch_indices(1, b + 2), want[b + 2])
    with pytest.raises(ValueError, match="p=2 x k=3"):
        TrainLoader(_Faces(), 8, batch_sampler=sampler)


def _parse(argv):
    return config_from_args(add_arguments(argparse.ArgumentParser()).parse_args(argv))


def test_train_flags_sampler_and_aux_loss():
    cfg = _parse(["--max-iters", "3", "-b", "16", "--sampler", "pk", "--p", "4", "--k", "4",
                  "--aux-loss", "triplet", "--aux-kwargs", "margin=0.3,mining=batch_all"])
    assert (cfg.sampler, cfg.pk_p, cfg.pk_k, cfg.aux_loss) == ("pk", 4, 4, "triplet")
    head, _ = build_heads(cfg, 10, 8)
    assert isinstance(head.aux, TripletLoss) and head.aux._mining == "batch_all"
    head, _ = build_heads(TrainConfig(max_iters=1, aux_loss="center",
                                      aux_kwargs={"lamda": 0.1}), 10, 8)
    assert isinstance(head.aux, CenterLoss) and head.aux.centers.shape == (10, 8)
    with pytest.raises(ValueError, match="--pk-p=3: .*global batch 16"):
        _parse(["--max-iters", "3", "-b", "16", "--sampler", "pk", "--p", "3", "--k", "4"])
    with pytest.raises(ValueError, match="--pk-k=16: .*divisor"):
        _parse(["--max-iters", "3", "-b", "32", "--sampler", "pk", "--p", "2", "--k", "16",
                "--micro-batch", "8"])
    with pytest.raises(ValueError, match="--aux-loss=.*auxiliary loss"):
        _parse(["--max-iters", "3", "--aux-loss", "arcface"])


def test_training_with_pk_batches_and_a_triplet_term(tmp_path):
    root = str(tmp_path / "faces")
    synthetic.make_dataset(root, num_identities=12, images_per_identity=3, num_pairs=20,
                           seed=1)
    cfg = TrainConfig(model="test_engine:tiny_backbone", data_dir=root, batch_size=16,
                      max_iters=4, lr=0.05, loss="cosface", margin_s=16.0, sampler="pk",
                      pk_p=4, pk_k=4, aux_loss="triplet", aux_kwargs={"margin": 0.5},
                      val_interval=0, save_interval=4,
                      save_dir=str(tmp_path / "run"), num_workers=0, progress=False,
                      tensorboard="none", log_interval=2)
    summary = train(cfg)
    assert summary["iterations"] == 4 and np.isfinite(summary["last_stats"]["loss"])
    assert os.path.isfile(summary["checkpoint"])
