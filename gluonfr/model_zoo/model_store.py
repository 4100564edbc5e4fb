"""The model store: sha1-verified backbone parameter files, fetched once into a local cache.

A published model is one entry of :data:`_model_sha1` (registry name -> sha1 of the file)
plus the file ``<name>-<sha1[:8]>.params`` (GluonCV's naming) at the store's base URL:
``$GLUONFR_REPO_URL`` if set (``http(s)://``, ``file://`` or a plain folder), else
:data:`DEFAULT_REPO_URL`. Files are cached under the same name in ``root``, else
``$GLUONFR_HOME/models``, else ``~/.gluonfr/models``. :func:`publish_model` turns a trained
parameter file into a store file and its registry entry.
"""
import hashlib
import logging
import os
import pathlib
import tempfile
import urllib.error
import urllib.parse
import urllib.request

import mxnet as mx
from tqdm import tqdm

from .registry import get_constructor

__all__ = ["get_model_file", "get_third_party_file", "publish_model", "purge", "short_hash",
           "file_sha1", "model_file_name", "ChecksumError", "DEFAULT_REPO_URL"]

logger = logging.getLogger(__name__)

#: Where released gluonfr weights are to be hosted (overridden by ``$GLUONFR_REPO_URL``).
DEFAULT_REPO_URL = "https://github.com/gluonfr/gluonfr/releases/download/models/"

#: Published backbones: registry name -> sha1 (hex) of ``<name>-<sha1[:8]>.params``.
#: An entry is added only when the file is uploaded to the store; see ``publish_model``.
_model_sha1 = {}

_CHUNK = 1 << 20


class ChecksumError(OSError):
    """A parameter file's sha1 is not the one the store's table records."""


def file_sha1(path):
    """sha1 (hex) of a file's bytes."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def short_hash(name):
    """First 8 hex digits of the published sha1 of model ``name``.

    Raises
    ------
    ValueError
        When no parameters are published for ``name``.
    """
    key = name.lower()
    if key not in _model_sha1:
        published = ", ".join(sorted(_model_sha1)) or "none yet"
        raise ValueError(f"no pretrained parameters are published for model {name!r} "
                         f"(published: {published}). Train it, then make a store file with "
                         f"scripts/publish_model.py")
    return _model_sha1[key][:8]


def model_file_name(name):
    """The store's file name for model ``name``: ``<name>-<sha1[:8]>.params``."""
    return f"{name.lower()}-{short_hash(name)}.params"


def _cache_dir(root):
    if root is None:
        home = os.environ.get("GLUONFR_HOME")
        root = (os.path.join(home, "models") if home
                else os.path.join("~", ".gluonfr", "models"))
    return os.path.abspath(os.path.expanduser(root))


def _repo_url():
    return os.environ.get("GLUONFR_REPO_URL") or DEFAULT_REPO_URL


def _file_url(base, file_name, var="GLUONFR_REPO_URL"):
    scheme = urllib.parse.urlsplit(base).scheme.lower()
    if scheme in ("http", "https", "file"):
        return base.rstrip("/") + "/" + urllib.parse.quote(file_name)
    if len(scheme) > 1:  # one letter is a Windows drive, i.e. a plain folder
        raise ValueError(f"{var}={base!r}: expected http(s)://, file:// "
                         f"or a folder")
    return pathlib.Path(base).expanduser().resolve().joinpath(file_name).as_uri()


def _download(url, path, sha1, var="GLUONFR_REPO_URL"):
    """Stream ``url`` into a temporary file beside ``path``, check its sha1, then rename it.

    Nothing is left at ``path`` (or beside it) unless the whole, verified file arrived.
    """
    folder, file_name = os.path.split(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=file_name + ".", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=60)
            except urllib.error.HTTPError as err:
                raise OSError(f"cannot fetch {file_name} from {url}: HTTP {err.code} "
                              f"{err.reason}") from err
            except (urllib.error.URLError, OSError) as err:
                raise OSError(f"cannot fetch {file_name} from {url}: "
                              f"{getattr(err, 'reason', err)}") from err
            with response:
                size = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024,
                          desc=f"Downloading {file_name}") as bar:
                    for block in iter(lambda: response.read(_CHUNK), b""):
                        out.write(block)
                        bar.update(len(block))
        actual = file_sha1(tmp)
        if actual != sha1:
            raise ChecksumError(f"{file_name} fetched from {url} has sha1 {actual}, but the "
                                f"model store expects {sha1}; the file was deleted. The "
                                f"store at {os.path.dirname(url)} does not hold the file this "
                                f"gluonfr version was published with (check {var}).")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def get_model_file(name, root=None):
    """Path of the sha1-verified parameter file of model ``name``, fetched when missing.

    A cached file whose sha1 does not match (corrupted, truncated or stale) is deleted and
    fetched again.

    Parameters
    ----------
    name : str
        Registry name of a published model.
    root : str, optional
        Cache folder; default ``$GLUONFR_HOME/models``, else ``~/.gluonfr/models``.

    Returns
    -------
    str
        Absolute path of the cached file.

    Raises
    ------
    ValueError
        No parameters are published for ``name``.
    OSError
        The file cannot be fetched from the store.
    ChecksumError
        The fetched file does not match the published sha1 (it is deleted).
    """
    file_name = model_file_name(name)
    sha1 = _model_sha1[name.lower()]
    path = os.path.join(_cache_dir(root), file_name)
    if os.path.exists(path):
        if file_sha1(path) == sha1:
            return path
        logger.warning("%s does not match its published sha1 %s (corrupted or stale); "
                       "deleting it and fetching it again", path, sha1)
        os.remove(path)
    url = _file_url(_repo_url(), file_name)
    logger.info("fetching %s from %s", file_name, url)
    _download(url, path, sha1)
    return path


#: Third-party files gluonfr runs but does not publish: file name -> (sha1, upstream URL).
#: ``$GLUONFR_THIRD_PARTY_URL`` (http(s)://, file:// or a plain folder holding the files under
#: these names) replaces the upstream location, e.g. for offline machines and tests.
_third_party = {
    # YuNet 2023mar (MIT), the default of gluonfr.detect.FaceDetector
    "face_detection_yunet_2023mar.onnx": (
        "acbe4b5976ade60c4b866a30d0720d71589c8bbc",
        "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/"
        "face_detection_yunet_2023mar.onnx"),
}


def get_third_party_file(file_name, root=None):
    """Path of a sha1-verified third-party file (e.g. the YuNet detector), fetched when missing.

    The file comes from ``$GLUONFR_THIRD_PARTY_URL/<file_name>`` when that is set, else from
    its upstream URL in :data:`_third_party`; it is cached in the model cache (see
    :func:`get_model_file`) and checked against the recorded sha1 like a model file.

    Parameters
    ----------
    file_name : str
        A key of :data:`_third_party`.
    root : str, optional
        Cache folder; default ``$GLUONFR_HOME/models``, else ``~/.gluonfr/models``.

    Returns
    -------
    str
        Absolute path of the cached file.

    Raises
    ------
    ValueError
        ``file_name`` is not a known third-party file.
    OSError, ChecksumError
        As :func:`get_model_file`.
    """
    if file_name not in _third_party:
        raise ValueError(f"{file_name!r} is not a known third-party file; known: "
                         f"{', '.join(sorted(_third_party))}")
    sha1, upstream = _third_party[file_name]
    path = os.path.join(_cache_dir(root), file_name)
    if os.path.exists(path):
        if file_sha1(path) == sha1:
            return path
        logger.warning("%s does not match its sha1 %s; deleting it and fetching it again",
                       path, sha1)
        os.remove(path)
    mirror = os.environ.get("GLUONFR_THIRD_PARTY_URL")
    var = "GLUONFR_THIRD_PARTY_URL"
    url = _file_url(mirror, file_name, var) if mirror else upstream
    logger.info("fetching %s from %s", file_name, url)
    _download(url, path, sha1, var)
    return path


def purge(root=None):
    """Delete every cached ``.params`` file from the cache folder (see :func:`get_model_file`)."""
    folder = _cache_dir(root)
    if os.path.isdir(folder):
        for entry in os.listdir(folder):
            if entry.endswith(".params"):
                os.remove(os.path.join(folder, entry))


def _structural_params(net):
    # the names save_parameters/load_parameters use: attribute paths, independent of prefixes
    return net._collect_params_with_prefix()


def publish_model(params_file, name, out_dir=".", **model_kwargs):
    """Turn a trained parameter file into a model-store file and its registry entry.

    The backbone's parameters are picked out of ``params_file``, which may be a backbone
    file from ``save_parameters`` or the file of a larger training network that holds the
    backbone as a child (the classifier and anything else are dropped). They are checked
    against the architecture ``name`` builds (every parameter present, with its shape),
    stored as float32, and written to ``out_dir/<name>-<sha1[:8]>.params``.

    Parameters
    ----------
    params_file : str
        A ``.params`` file saved with ``save_parameters``.
    name : str
        Registry name of the architecture.
    out_dir : str
        Folder for the store file.
    **model_kwargs
        Constructor arguments the model was trained with (e.g. ``embedding_size``).

    Returns
    -------
    dict
        ``name``, ``sha1``, ``file_name``, ``path``, ``dropped`` (names of the parameters
        left out) and ``entry`` (the line for :data:`_model_sha1`).

    Raises
    ------
    ValueError
        The file does not hold the backbone's parameters with the right shapes.
    """
    key = name.lower()
    net = get_constructor(key)(**model_kwargs)
    wanted = _structural_params(net)
    try:
        loaded = mx.nd.load(params_file)
    except mx.base.MXNetError as err:
        raise ValueError(f"{params_file}: not an MXNet parameter file ({err})") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"{params_file}: holds an unnamed list of arrays, expected the "
                         f"named parameters written by save_parameters")
    prefix = _find_prefix(loaded, wanted, params_file, key)
    arrays = {}
    for pname, param in wanted.items():
        array = loaded[prefix + pname]
        if array.shape != param.shape:
            raise ValueError(f"{params_file}: {prefix + pname} has shape {array.shape}, "
                             f"{key}({_kwargs_text(model_kwargs)}) expects {param.shape}")
        arrays[pname] = array.astype("float32", copy=False)
    dropped = sorted(set(loaded) - {prefix + p for p in wanted})

    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=key + ".", suffix=".part", dir=out_dir)
    os.close(fd)
    try:
        mx.nd.save(tmp, arrays)
        net.load_parameters(tmp)  # the file must load, strictly, into the architecture
        sha1 = file_sha1(tmp)
        file_name = f"{key}-{sha1[:8]}.params"
        path = os.path.join(out_dir, file_name)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return {"name": key, "sha1": sha1, "file_name": file_name, "path": path,
            "dropped": dropped, "entry": f'"{key}": "{sha1}",'}


def _find_prefix(loaded, wanted, params_file, name):
    """The prefix under which every backbone parameter appears in ``loaded`` ('' if bare)."""
    first = next(iter(wanted))
    candidates = sorted({k[:-len(first)] for k in loaded if k.endswith(first)}, key=len)
    for prefix in candidates:
        if prefix and not prefix.endswith("."):
            continue
        if all(prefix + p in loaded for p in wanted):
            return prefix
    missing = [p for p in wanted if p not in loaded]
    raise ValueError(f"{params_file}: does not hold the parameters of {name} "
                     f"({len(missing)} of {len(wanted)} missing, e.g. {missing[:3]}; "
                     f"file has e.g. {sorted(loaded)[:3]}). Was it saved with "
                     f"save_parameters from a {name} network built with the same arguments?")


def _kwargs_text(kwargs):
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())

