"""gluon-face 1.0.2's public names as deprecated aliases: values against numpy written from
gluon-face's formulas, its defaults, its bugs fixed, and a gluon-face-style training script."""
import json
import math
import os
import subprocess
import sys
import textwrap
import warnings

import gluonfr
import gluonfr.loss as L
from gluonfr.data import get_recognition_dataset, synthetic
from gluonfr.metrics import FaceVerification
from gluonfr.model_zoo import get_model

import mxnet as mx
import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ce(logits, label):
    z = logits - logits.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return -logp[np.arange(len(label)), label]


def _cos_batch(seed=0, n=6, c=5):
    rng = np.random.RandomState(seed)
    cos = rng.uniform(-1, 1, (n, c))
    label = rng.randint(0, c, n)
    cos[0, label[0]] = -0.3  # a target with cos < 0 (easy_margin's other branch)
    return cos, label


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return fn(*args, **kwargs)


@pytest.mark.parametrize("cls, new", [(L.ArcLoss, "ArcFaceLoss"), (L.CosLoss, "CosFaceLoss"),
                                      (L.L2Softmax, "NormFaceLoss")])
def test_aliases_warn_naming_the_new_class(cls, new):
    kwargs = {"alpha": 30, "from_normx": True} if cls is L.L2Softmax else {}
    with pytest.warns(DeprecationWarning, match=new):
        cls(10, **kwargs)


def test_arcloss_keeps_gluonface_defaults_and_formula():
    loss = _quiet(L.ArcLoss, 5)
    assert (loss._s, loss._m2) == (64.0, 0.5) and loss.classes == 5
    cos, label = _cos_batch()
    # gluon-face: phi = cos(arccos(c) + m) where c > 0 (easy_margin=True), else c
    c_y = cos[np.arange(len(label)), label]
    phi = np.where(c_y > 0, np.cos(np.arccos(c_y) + 0.5), c_y)
    ref = cos.copy()
    ref[np.arange(len(label)), label] = phi
    out = loss(mx.nd.array(cos), mx.nd.array(label)).asnumpy()
    np.testing.assert_allclose(out, _ce(64 * ref, label), rtol=1e-4, atol=1e-4)


def test_arcloss_gradient_is_finite_at_cos_one():
    loss = _quiet(L.ArcLoss, 3, easy_margin=False)
    x = mx.nd.array([[1.0, 0.2, -0.1], [0.1, -1.0, 0.3]])
    x.attach_grad()
    with mx.autograd.record():
        out = loss(x, mx.nd.array([0, 1]))
    out.backward()
    assert np.isfinite(x.grad.asnumpy()).all()  # gluon-face's arccos gave inf/NaN here


def test_cosloss_defaults_from_gluonface_docstring():
    loss = _quiet(L.CosLoss, 5)
    cos, label = _cos_batch(1)
    ref = cos.copy()
    ref[np.arange(len(label)), label] -= 0.4
    out = loss(mx.nd.array(cos), mx.nd.array(label)).asnumpy()
    np.testing.assert_allclose(out, _ce(64 * ref, label), rtol=1e-4, atol=1e-4)


def test_l2softmax_from_normx_is_normface_and_its_bug_is_refused():
    loss = _quiet(L.L2Softmax, 5, alpha=20, from_normx=True)
    cos, label = _cos_batch(2)
    out = loss(mx.nd.array(cos), mx.nd.array(label)).asnumpy()
    np.testing.assert_allclose(out, _ce(20 * cos, label), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="logit vector"):
        _quiet(L.L2Softmax, 5, alpha=20)
    bound = math.log(0.9 * 998 / 0.1)
    with pytest.raises(ValueError, match=f"{bound:.3f}"):
        _quiet(L.L2Softmax, 1000, alpha=5, from_normx=True)


def test_gluonface_get_loss_names():
    assert set(L.compat.GLUONFACE_LOSS_NAMES) <= set(L.get_loss_list())
    with pytest.warns(DeprecationWarning, match="get_loss\\('cosface'\\)"):
        loss = L.get_loss("cosLoss", classes=5, m=0.3, s=30)  # unreachable in gluon-face
    assert isinstance(loss, L.CosFaceLoss)
    # SVXSoftmax(s, t, m2): target cos - m2, negatives above it t*cos + t - 1
    svx = _quiet(L.get_loss, "svxsoftmax", classes=5, s=30, t=1.2, m2=0.35)
    cos, label = _cos_batch(3)
    rows = np.arange(len(label))
    target = cos[rows, label] - 0.35
    ref = np.where(cos > target[:, None], 1.2 * cos + 0.2, cos)
    ref[rows, label] = target
    out = svx(mx.nd.array(cos), mx.nd.array(label)).asnumpy()
    np.testing.assert_allclose(out, _ce(30 * ref, label), rtol=1e-4, atol=1e-4)
    # gluon-face's contrastive loss took norm(square(a - b)); gluonfr's the Euclidean distance
    rng = np.random.RandomState(4)
    a, b, same = rng.randn(6, 3), rng.randn(6, 3), np.array([1, 0, 1, 0, 0, 1.0])
    d = np.linalg.norm(a - b, axis=1)
    ref = same * d ** 2 + (1 - same) * np.maximum(1.5 - d, 0) ** 2
    contrastive = _quiet(L.get_loss, "contrastiveloss", margin=1.5)
    out = contrastive(mx.nd.array(a), mx.nd.array(b), mx.nd.array(same)).asnumpy()
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
    assert isinstance(_quiet(L.get_loss, "mpsoss", m=1.0), L.MPSLoss)  # gluon-face's typo
    center = _quiet(L.get_loss, "centerloss", classes=5, embedding_size=8, lamda=0.1)
    assert isinstance(center, L.CenterLoss)


def _gluonface_root(tmp_path):
    root = tmp_path / "face"
    synthetic.make_dataset(str(root / "emore"), num_identities=4, images_per_identity=3,
                           num_pairs=6, image_size=32, seed=0, bin_name="lfw.bin")
    os.replace(root / "emore" / "lfw.bin", root / "lfw.bin")
    return root


def test_get_recognition_dataset_reads_gluonface_layout(tmp_path):
    root = _gluonface_root(tmp_path)
    with pytest.warns(DeprecationWarning, match="FaceRecordDataset"):
        train = get_recognition_dataset("emore", root=str(root),
                                        transform=lambda img, label: (img.shape, label + 100))
    assert len(train) == 12 and train.num_classes == 4  # no header / identity records counted
    assert sorted({train[i][1] for i in range(len(train))}) == [100, 101, 102, 103]
    assert train[0][0] == (32, 32, 3)
    val = _quiet(get_recognition_dataset, "lfw", root=str(root), transform=lambda x: x[:8],
                 image_size=(32, 32))
    (a, b), same = val[0]
    assert len(val) == 6 and a.shape == (8, 32, 3) and same in (0, 1)
    images, issame = gluonfr.data.load_bin(str(root / "lfw.bin"), image_size=(32, 32))
    np.testing.assert_array_equal(val[5][0][1].asnumpy(), images[11].asnumpy()[:8])
    assert [val[i][1] for i in range(6)] == issame.astype(int).tolist()
    with pytest.raises(ValueError, match="unknown dataset 'ms1m_v2'.*emore"):
        _quiet(get_recognition_dataset, "ms1m_v2", root=str(root))


def test_face_verification_gluonface_tuple_behind_a_flag():
    rng = np.random.RandomState(0)
    a = rng.randn(40, 8)
    b = a + rng.randn(40, 8) * np.repeat([0.2, 3.0], 20)[:, None]
    issame = np.repeat([True, False], 20)
    assert len(FaceVerification(flip=False).get()) == 2
    with pytest.warns(DeprecationWarning, match="7-tuple"):
        old = FaceVerification(nfolds=4, flip=False, gluonface_get=True)
    new = FaceVerification(nfolds=4, flip=False)
    for m in (old, new):
        m.update(issame, a, b)
    tpr, fpr, acc, val, val_std, far, acc_std = old.get()
    r = new.result()
    assert acc == new.get()[1] == r["accuracy"] and acc_std == r["accuracy_std"]
    assert (val, val_std, far) == (r["val"], r["val_std"], r["far"])
    np.testing.assert_array_equal(tpr, r["tpr"])
    np.testing.assert_array_equal(fpr, r["fpr"])


def test_whole_gluonface_net_returns_embedding_and_cosines():
    net = get_model("gluonface_mobilefacenet", classes=7, weight_norm=True, feature_norm=True)
    emb, logits = net(mx.nd.random.uniform(0, 255, (2, 3, 112, 112)))
    assert emb.shape == (2, 128) and logits.shape == (2, 7)
    assert np.abs(logits.asnumpy()).max() <= 1 + 1e-5
    assert "output.weight" in net._collect_params_with_prefix()


GLUONFACE_SCRIPT = '''
import json
import sys
# gluonfr before mxnet (mxnet 1.9.1 needs numpy aliases that numpy >= 1.24 removed)
from gluonfr.data import get_recognition_dataset
from gluonfr.loss import ArcLoss, L2Softmax
from gluonfr.metrics import FaceVerification
from gluonfr.model_zoo import get_model
import mxnet as mx
from mxnet import autograd, gluon

root = sys.argv[1]
# gluonfr networks take 0..255 pixels: gluon-face's ToTensor() becomes a transpose
to_chw = lambda img: img.transpose((2, 0, 1)).astype("float32")
train_set = get_recognition_dataset("emore", root=root,
                                    transform=lambda img, label: (to_chw(img), label))
train_data = gluon.data.DataLoader(train_set, batch_size=4, shuffle=True, last_batch="discard")
val_set = get_recognition_dataset("lfw", root=root, transform=to_chw, image_size=(32, 32))
val_data = gluon.data.DataLoader(val_set, batch_size=8)

num_classes = train_set.num_classes
net = get_model("gluonface_l_se_resnet18v2", classes=num_classes, weight_norm=True,
                feature_norm=True, embedding_size=64)
net.initialize(mx.init.MSRAPrelu())
net.hybridize()
warmup = L2Softmax(num_classes, alpha=10, from_normx=True)
arcface = ArcLoss(num_classes, m=0.2, s=10, easy_margin=False)
trainer = gluon.Trainer(net.collect_params(), "nag", {"learning_rate": 0.05, "momentum": 0.9})
losses = []
for it, (data, label) in enumerate(train_data):
    loss_fn = warmup if it < 1 else arcface
    with autograd.record():
        embedding, cos = net(data)
        loss = loss_fn(cos, label)
    loss.backward()
    trainer.step(data.shape[0])
    losses.append(float(loss.mean().asscalar()))

metric = FaceVerification(nfolds=2, flip=False, gluonface_get=True)
for (a, b), issame in val_data:
    metric.update(issame, net(a)[0], net(b)[0])
tpr, fpr, acc, val, val_std, far, acc_std = metric.get()
print(json.dumps({"losses": losses, "acc": acc}))
'''


@pytest.mark.slow
def test_gluonface_style_training_script_runs_through_the_aliases(tmp_path):
    root = _gluonface_root(tmp_path)
    script = tmp_path / "train_gluonface.py"
    script.write_text(textwrap.dedent(GLUONFACE_SCRIPT))
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = subprocess.run([sys.executable, "-W", "always::DeprecationWarning", str(script),
                          str(root)], capture_output=True, text=True, env=env,
                         cwd=str(tmp_path), timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    for old in ("get_recognition_dataset", "L2Softmax", "ArcLoss", "7-tuple"):
        assert f"DeprecationWarning: {old}" in run.stderr.replace("FaceVerification(gluonface_"
                                                                  "get=True): gluon-face's ",
                                                                  "")
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert len(result["losses"]) == 3 and all(np.isfinite(result["losses"]))
    assert 0 <= result["acc"] <= 1
