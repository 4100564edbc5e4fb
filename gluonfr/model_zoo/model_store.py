"""The model store: sha1-verified backbone parameter files, fetched once into a local cache.

A published model is one entry of :data:`_model_sha1` (registry name -> sha1 of the file)
plus the file ``<name>-<sha1[:8]>.params`` (GluonCV's naming) at the store's base URL
``$GLUONFR_REPO_URL`` (``http(s)://``, ``file://`` or a plain folder; no default: this
project publishes no weights yet). Files are cached under the same name in ``root``, else
``$GLUONFR_HOME/models``, else ``~/.gluonfr/models``.

Weights imported with ``gluonfr-import`` (:func:`store_network`) or written by
:func:`publish_model` are recorded in the cache folder's local index
(:mod:`.store_index`), with their constructor arguments and model card, and found by
:func:`get_model_file` under their name and tag.
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

from ..utils.fileio import atomic_open, atomic_paths
from .registry import get_constructor

__all__ = ["get_model_file", "get_third_party_file", "publish_model", "purge", "short_hash",
           "file_sha1", "model_file_name", "ChecksumError", "DEFAULT_REPO_URL",
           "store_network", "get_model_card", "find_entry", "no_weights_message"]

logger = logging.getLogger(__name__)

#: The store's base URL when ``$GLUONFR_REPO_URL`` is unset: none, as no weights are published.
DEFAULT_REPO_URL = None

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
        raise ValueError(no_weights_message(name))
    return _model_sha1[key][:8]


def no_weights_message(name, root=None):
    """What to do when ``pretrained=True`` finds no weights for ``name``."""
    from .store_index import index_path

    published = ", ".join(sorted(_model_sha1)) or "none yet"
    return (f"no pretrained weights for model {name!r}: the built-in store table publishes "
            f"{published}, and the local index {index_path(root)} has none for it. Import "
            f"weights you have: 'gluonfr-import model-y1-test2/model,0' (an insightface "
            f"MXNet checkpoint), 'gluonfr-import backbone.pth' or 'gluonfr-import "
            f"w600k_r50.onnx' (arcface_torch), then get_model(<the printed name>, "
            f"pretrained=True); or train one and run gluonfr-publish --out-dir into the "
            f"cache; or set GLUONFR_REPO_URL to a store that holds {name.lower()}-<sha1[:8]>"
            f".params listed in model_store._model_sha1.")


def model_file_name(name):
    """The store's file name for model ``name``: ``<name>-<sha1[:8]>.params``."""
    return f"{name.lower()}-{short_hash(name)}.params"


def _cache_dir(root):
    if root is None:
        home = os.environ.get("GLUONFR_HOME")
        root = (os.path.join(home, "models") if home
                else os.path.join("~", ".gluonfr", "models"))
    return os.path.abspath(os.path.expanduser(root))


def _repo_url(name):
    url = os.environ.get("GLUONFR_REPO_URL") or DEFAULT_REPO_URL
    if not url:
        raise OSError(f"{name!r} is in the store table but no store is set: "
                      f"set GLUONFR_REPO_URL to the store's URL or folder")
    return url


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
    file_name = os.path.basename(path)
    digest = hashlib.sha1()
    with atomic_open(path, "wb") as out:
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
                    digest.update(block)
                    bar.update(len(block))
        actual = digest.hexdigest()
        if actual != sha1:  # raised inside atomic_open: the temporary is deleted
            raise ChecksumError(f"{file_name} fetched from {url} has sha1 {actual}, but the "
                                f"model store expects {sha1}; the file was deleted. The "
                                f"store at {os.path.dirname(url)} does not hold the file this "
                                f"gluonfr version was published with (check {var}).")


def find_entry(name, tag=None, root=None):
    """The local-index entry for ``name`` (and ``tag``), or None (see :mod:`.store_index`).

    With ``tag=None`` a name that the built-in table publishes resolves there (None here).
    """
    from .store_index import lookup

    if tag is None and name.lower() in _model_sha1:
        return None
    return lookup(name, tag, root)


def _local_file(entry, root):
    path = os.path.join(_cache_dir(root), entry["file_name"])
    if not os.path.exists(path):
        raise OSError(f"{path} is missing, though the local index records it for "
                      f"{entry['name']!r} (tag {entry['tag']!r}); import the weights again")
    actual = file_sha1(path)
    if actual != entry["sha1"]:
        raise ChecksumError(f"{path} has sha1 {actual}, but the local index records "
                            f"{entry['sha1']} for {entry['name']!r} (tag {entry['tag']!r}): "
                            f"the file was modified or corrupted; refusing to load it. "
                            f"Import the weights again.")
    return path


def arch_of(name, root=None):
    """The architecture ``get_model(name)`` builds: ``name`` or, for a stored alias, its
    entry's (``gluonfr-import --name``)."""
    from .registry import get_model_list
    from .store_index import read_index

    key = str(name).lower()
    if key in get_model_list() or ":" in key:
        return key
    tags = read_index(root)["models"].get(key, {})
    return next(iter(tags.values()))["arch"] if tags else key


def resolve_weights(spec, root=None):
    """``'NAME'`` or ``'NAME:TAG'`` of stored weights -> (architecture, constructor
    arguments, path of the sha1-verified file).

    Raises
    ------
    ValueError, OSError, ChecksumError
        As :func:`get_model_file`.
    """
    name, _, tag = str(spec).partition(":")
    entry = find_entry(name, tag or None, root)
    if entry is None:
        return name.lower(), {}, get_model_file(name, root=root, tag=tag or None)
    return entry["arch"], dict(entry["kwargs"]), _local_file(entry, root)


def get_model_file(name, root=None, tag=None):
    """Path of the sha1-verified parameter file of model ``name``, fetched when missing.

    Weights in the local index (imported or published into the cache) are found by name and
    ``tag``; a local file whose sha1 does not match the index is refused. A cached file of
    the built-in table whose sha1 does not match (corrupted, truncated or stale) is deleted
    and fetched again.

    Parameters
    ----------
    name : str
        Model name: a registry name, or a name given to ``gluonfr-import --name``.
    root : str, optional
        Cache folder; default ``$GLUONFR_HOME/models``, else ``~/.gluonfr/models``.
    tag : str, optional
        Which of several stored weights of ``name``.

    Returns
    -------
    str
        Absolute path of the cached file.

    Raises
    ------
    ValueError
        No weights are published or stored for ``name`` (the message says how to get them).
    OSError
        The file cannot be fetched from the store.
    ChecksumError
        The fetched file does not match the published sha1 (it is deleted), or a locally
        stored file does not match the index (refused).
    """
    entry = find_entry(name, tag, root)
    if entry is not None:
        return _local_file(entry, root)
    if tag is not None or name.lower() not in _model_sha1:
        raise ValueError(no_weights_message(name, root))
    file_name = model_file_name(name)
    path = os.path.join(_cache_dir(root), file_name)
    return _cached_or_fetched(path, _model_sha1[name.lower()],
                              lambda: _file_url(_repo_url(name), file_name))


def _cached_or_fetched(path, sha1, url, var="GLUONFR_REPO_URL"):
    """``path`` if it holds the file of ``sha1``; else (deleting a stale copy) fetch it from
    ``url()`` (called only then) and return ``path``."""
    if os.path.exists(path):
        if file_sha1(path) == sha1:
            return path
        logger.warning("%s does not match its published sha1 %s (corrupted or stale); "
                       "deleting it and fetching it again", path, sha1)
        os.remove(path)
    source = url()
    logger.info("fetching %s from %s", os.path.basename(path), source)
    _download(source, path, sha1, var)
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
    var = "GLUONFR_THIRD_PARTY_URL"

    def url():
        mirror = os.environ.get(var)
        return _file_url(mirror, file_name, var) if mirror else upstream

    return _cached_or_fetched(os.path.join(_cache_dir(root), file_name), sha1, url, var)


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


def _save_named_by_sha1(save, key, out_dir, check=None):
    """Write a parameter file with ``save(path)`` as ``out_dir/<key>-<sha1[:8]>.params``.

    The name depends on the bytes, so the file is written to a temporary name in
    ``out_dir``, checked by ``check(path)`` when given, hashed, then renamed; nothing is
    left behind on error. Returns (sha1, file name, path).
    """
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    # stage in a private folder beside the destination, then hand the file to atomic_paths
    # under its final name (a rename on the same file system: no second copy)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=f".{key}-staging-") as stage:
        staged = os.path.join(stage, key + ".params")
        save(staged)
        if check is not None:
            check(staged)
        sha1 = file_sha1(staged)
        file_name = f"{key}-{sha1[:8]}.params"
        path = os.path.join(out_dir, file_name)
        with atomic_paths(path) as (tmp,):
            os.replace(staged, tmp)
    return sha1, file_name, path


def _entry(name, tag, arch, kwargs, sha1, file_name, card):
    from .store_index import clean_tag

    return {"name": name, "tag": clean_tag(tag), "arch": arch,
            "kwargs": {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()},
            "sha1": sha1, "file_name": file_name, "card": card or {}}


def store_network(net, name=None, tag=None, card=None, root=None):
    """Store an imported network's weights in the cache with an entry in the local index.

    Afterwards ``get_model(name, pretrained=True)`` (or ``pretrained=tag`` when ``name`` has
    several weights) rebuilds it, on any machine that shares the cache folder.

    Parameters
    ----------
    net : HybridBlock
        A network from :func:`gluonfr.model_zoo.import_model` (its ``import_info`` names
        the architecture and constructor arguments).
    name : str, optional
        Name for ``get_model``; default the architecture's (e.g. ``'iresnet50'``). Another
        name (``'w600k_r50'``) becomes an alias of that architecture.
    tag : str, optional
        Tag of these weights; default from the source's file or folder name.
    card : dict, optional
        The model card (see :mod:`.cards`).
    root : str, optional
        Cache folder.

    Returns
    -------
    dict
        The index entry (``name``, ``tag``, ``arch``, ``kwargs``, ``sha1``, ``file_name``,
        ``card``) plus ``path``.
    """
    from .registry import get_model_list
    from .store_index import record

    info = net.import_info
    arch = info["name"]
    key = (name or arch).lower()
    if key != arch and key in get_model_list():
        raise ValueError(f"--name {key!r} is another registered architecture; the weights "
                         f"are a {arch}: use {arch!r} or a new name")
    if tag is None:
        source = os.fspath(info["source"]).rstrip("/\\")
        base = os.path.basename(source.split(",")[0])
        parent = os.path.basename(os.path.dirname(source))
        stem = os.path.splitext(base)[0]
        tag = parent if stem in ("model", "backbone", "") and parent else stem
    folder = _cache_dir(root)
    sha1, file_name, path = _save_named_by_sha1(net.save_parameters, key, folder)
    entry = record(_entry(key, tag, arch, info["kwargs"], sha1, file_name, card), root=folder)
    return dict(entry, path=path)


def get_model_card(name, tag=None, root=None):
    """The model card of stored weights: source, training set, head and margins, input
    colour order and normalisation, alignment, embedding size, licence, published accuracy.

    Parameters
    ----------
    name : str
        Model name (as for ``get_model(name, pretrained=True)``).
    tag : str, optional
        Which of several stored weights.
    root : str, optional
        Cache folder.

    Returns
    -------
    dict

    Raises
    ------
    ValueError
        No weights (and so no card) for ``name``; the message says how to get them.
    """
    from .cards import BUILTIN_CARDS

    entry = find_entry(name, tag, root)
    if entry is not None:
        return dict(entry["card"], name=entry["name"], tag=entry["tag"], sha1=entry["sha1"])
    key = name.lower()
    if tag is None and key in _model_sha1:
        return dict(BUILTIN_CARDS.get(key, {}), name=key, sha1=_model_sha1[key])
    raise ValueError(no_weights_message(name, root))


def publish_model(params_file, name, out_dir=".", tag=None, card=None, **model_kwargs):
    """Turn a trained parameter file into a model-store file and its registry entry.

    The backbone's parameters are picked out of ``params_file``, which may be a backbone
    file from ``save_parameters`` or the file of a larger training network that holds the
    backbone as a child (the classifier and anything else are dropped). They are checked
    against the architecture ``name`` builds (every parameter present, with its shape),
    stored as float32, and written to ``out_dir/<name>-<sha1[:8]>.params``, with an entry in
    ``out_dir``'s local index (as ``gluonfr-import`` writes): publishing into the cache
    folder makes ``get_model(name, pretrained=True)`` load it at once.

    Parameters
    ----------
    params_file : str
        A ``.params`` file saved with ``save_parameters``.
    name : str
        Registry name of the architecture.
    out_dir : str
        Folder for the store file.
    tag : str, optional
        Tag of the entry; default the file's stem.
    card : dict, optional
        Model card of the weights (training set, head, ...).
    **model_kwargs
        Constructor arguments the model was trained with (e.g. ``embedding_size``).

    Returns
    -------
    dict
        ``name``, ``sha1``, ``file_name``, ``path``, ``dropped`` (names of the parameters
        left out), ``entry`` (the line for :data:`_model_sha1`) and ``index`` (the local
        index entry).

    Raises
    ------
    ValueError
        The file does not hold the backbone's parameters with the right shapes.
    """
    from .store_index import record

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

    # the file must load, strictly, into the architecture
    sha1, file_name, path = _save_named_by_sha1(lambda p: mx.nd.save(p, arrays), key, out_dir,
                                                check=net.load_parameters)
    card = dict(card or {}, source=os.path.basename(params_file), format="gluonfr",
                architecture=key)
    tag = tag or os.path.splitext(os.path.basename(params_file))[0]
    index = record(_entry(key, tag, key, model_kwargs, sha1, file_name, card),
                   root=os.path.abspath(out_dir))
    return {"name": key, "sha1": sha1, "file_name": file_name, "path": path,
            "dropped": dropped, "entry": f'"{key}": "{sha1}",', "index": index}


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

