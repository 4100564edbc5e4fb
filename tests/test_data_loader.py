"""Training loader: batch contents, determinism across workers, exact resume, augmentation."""
import gluonfr  # noqa: F401
from gluonfr.data import DataFormatError, FaceRecordDataset, make_train_loader
from gluonfr.data.loader import epoch_permutation
from gluonfr.data.recordio import RecordWriter
from gluonfr.data.transforms import TrainAugmentation, sample_uniforms

import cv2
import mxnet as mx
import numpy as np
import pytest


def smooth(rng):
    small = rng.integers(0, 256, (6, 6, 3)).astype(np.uint8)
    return cv2.resize(small, (112, 112), interpolation=cv2.INTER_CUBIC)


@pytest.fixture(scope="module")
def rec_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("loader")
    rng = np.random.default_rng(0)
    with RecordWriter(str(root)) as w:
        for label in range(5):
            for _ in range(5 if label != 2 else 3):
                w.add(label, cv2.imencode(".jpg", smooth(rng))[1].tobytes())
    return str(root)


def collect(loader, **kw):
    it = loader.iter_epoch(**kw) if kw else loader
    return [(d.asnumpy(), lab.asnumpy()) for d, lab in it]


def test_batches_are_the_permuted_flipped_images(rec_root):
    ds = FaceRecordDataset(rec_root)
    loader = make_train_loader(ds, batch_size=4, seed=7)
    assert len(ds) == 23 and len(loader) == 5  # partial last batch discarded
    batches = collect(loader)
    assert len(batches) == 5 and loader.epoch == 1
    perm = epoch_permutation(23, 7, 0)
    assert sorted(perm.tolist()) == list(range(23))
    u = sample_uniforms(7, 0, perm, TrainAugmentation.num_uniforms)
    flips = 0
    for b, (data, label) in enumerate(batches):
        assert data.shape == (4, 3, 112, 112) and data.dtype == np.float32
        assert label.dtype == np.float32
        for j in range(4):
            pos = b * 4 + j
            img, lab = ds[int(perm[pos])]
            ref = img.asnumpy()  # RGB HWC uint8 via the dataset's own path
            if u[pos, 0] < 0.5:
                ref = ref[:, ::-1]
                flips += 1
            np.testing.assert_array_equal(data[j], ref.transpose(2, 0, 1).astype(np.float32))
            assert label[j] == lab
    assert 3 <= flips <= 17  # a fair coin over 20 samples
    # the next epoch is another permutation
    nxt = collect(loader)
    assert not all((a[1] == b[1]).all() for a, b in zip(batches, nxt))


def test_workers_and_resume_give_identical_batches(rec_root):
    base = make_train_loader(rec_root, batch_size=4, num_workers=0, seed=3)
    epoch1 = collect(base, epoch=1)
    with make_train_loader(rec_root, batch_size=4, num_workers=2, seed=3) as par:
        assert all((a[0] == b[0]).all() and (a[1] == b[1]).all()
                   for a, b in zip(epoch1, collect(par, epoch=1)))
        # stop early in one epoch, then resume another at batch 2: exactly the tail
        it = par.iter_epoch(0)
        next(it)
        it.close()
        par.set_epoch(1, start_batch=2)
        tail = collect(par)
        assert len(tail) == 3 and par.epoch == 2
        for a, b in zip(epoch1[2:], tail):
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[1], b[1])
    other_seed = collect(make_train_loader(rec_root, batch_size=4, seed=4), epoch=1)
    assert not all((a[1] == b[1]).all() for a, b in zip(epoch1, other_seed))


def test_augmentation_is_deterministic_and_per_sample(rec_root):
    kw = dict(batch_size=5, seed=1, brightness=0.3, contrast=0.3, saturation=0.3,
              crop_scale=(0.7, 1.0), last_batch="keep")
    a = collect(make_train_loader(rec_root, num_workers=0, **kw))
    with make_train_loader(rec_root, num_workers=2, **kw) as par:
        b = collect(par)
    assert len(a) == 5 and a[-1][0].shape[0] == 3  # 23 = 4*5 + 3 kept
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x[0], y[0])
    plain = collect(make_train_loader(rec_root, batch_size=5, seed=1, last_batch="keep"))
    assert not np.array_equal(a[0][0], plain[0][0])
    assert a[0][0].min() >= 0 and a[0][0].max() <= 255
    # a sample's randomness does not depend on its batch: same (seed, epoch, index) -> same u
    u1 = sample_uniforms(1, 0, [5, 9, 11], 8)
    u2 = sample_uniforms(1, 0, [11, 2, 5], 8)
    np.testing.assert_array_equal(u1[0], u2[2])
    np.testing.assert_array_equal(u1[2], u2[0])
    assert not np.array_equal(u1[0], sample_uniforms(1, 1, [5], 8)[0])
    assert 0 <= u1.min() and u1.max() < 1


def test_generic_dataset_and_label_dtype():
    rng = np.random.default_rng(5)
    images = [smooth(rng) for _ in range(6)]
    ds = mx.gluon.data.ArrayDataset(images, list(range(6)))
    loader = make_train_loader(ds, batch_size=3, flip=False, shuffle=False, label_dtype="int32")
    (d0, l0), (d1, l1) = collect(loader)
    assert l0.dtype == np.int32 and l1.tolist() == [3, 4, 5]
    np.testing.assert_array_equal(d1[2], images[5].transpose(2, 0, 1))


def test_worker_errors_name_the_record(tmp_path):
    rng = np.random.default_rng(6)
    with RecordWriter(str(tmp_path)) as w:
        for k in range(4):
            w.add(k // 2, cv2.imencode(".jpg", smooth(rng))[1].tobytes() if k != 3 else b"junk")
    with make_train_loader(str(tmp_path), batch_size=2, num_workers=2, shuffle=False) as par:
        with pytest.raises(DataFormatError, match=r"train\.rec record key 4: cannot decode"):
            collect(par)
    with pytest.raises(DataFormatError, match=r"record key 4"):
        collect(make_train_loader(str(tmp_path), batch_size=2, shuffle=False))


def test_bad_arguments():
    ds = mx.gluon.data.ArrayDataset([np.zeros((112, 112, 3), np.uint8)] * 3, [0, 1, 2])
    with pytest.raises(ValueError, match="no batch"):
        make_train_loader(ds, batch_size=4)
    with pytest.raises(ValueError, match="last_batch"):
        make_train_loader(ds, batch_size=1, last_batch="rollover")
    with pytest.raises(ValueError, match="crop_scale"):
        make_train_loader(ds, batch_size=1, crop_scale=(0.9, 0.5))


def test_dataset_is_fork_safe_in_gluon_dataloader_workers(rec_root):
    # each worker process reopens the .rec (a descriptor shared across fork corrupts reads)
    ds = FaceRecordDataset(rec_root)
    ds[0]  # the parent has its descriptor open before the fork
    ref = [ds[i] for i in range(len(ds))]
    loader = mx.gluon.data.DataLoader(ds, batch_size=6, num_workers=2, shuffle=False,
                                      last_batch="keep")
    pos = 0
    for data, label in loader:
        for j in range(data.shape[0]):
            np.testing.assert_array_equal(data[j].asnumpy(), ref[pos][0].asnumpy())
            assert int(label[j].asscalar()) == ref[pos][1]
            pos += 1
    assert pos == len(ds)


def test_sharded_loaders_together_load_the_single_loaders_global_batches(rec_root):
    from gluonfr.data.loader import ShardedTrainLoader

    ds = FaceRecordDataset(rec_root)
    aug = TrainAugmentation(flip=True)
    whole = ShardedTrainLoader(ds, 6, 0, 1, seed=5, augmentation=aug)  # one shard = plain
    plain = make_train_loader(ds, batch_size=6, seed=5)
    assert [b.tolist() for b in whole.epoch_batches(2)] == \
        [b.tolist() for b in plain.epoch_batches(2)]
    shards = [ShardedTrainLoader(ds, 2, rank, 3, seed=5, augmentation=aug) for rank in range(3)]
    glob_batches = plain.epoch_batches(1, start_batch=1)
    parts = [s.epoch_batches(1, start_batch=1) for s in shards]
    assert len(glob_batches) == len(parts[0]) == len(plain) - 1
    for b, batch in enumerate(glob_batches):  # rank r holds samples 2r, 2r+1 of each batch
        assert np.concatenate([p[b] for p in parts]).tolist() == batch.tolist()
    # and what each shard loads is exactly its slice of the single loader's batch
    want_data, want_label = collect(plain, epoch=1, start_batch=1)[0]
    for rank, shard in enumerate(shards):
        data, label = collect(shard, epoch=1, start_batch=1)[0]
        np.testing.assert_array_equal(data, want_data[2 * rank:2 * rank + 2])
        np.testing.assert_array_equal(label, want_label[2 * rank:2 * rank + 2])
    with pytest.raises(ValueError, match="start_batch 9 outside"):
        shards[0].epoch_batches(0, start_batch=9)
