"""Data-parallel plumbing: kvstore creation and MXNet's own multi-machine launcher.

Multi-machine training uses MXNet's parameter server (ps-lite): one scheduler, some servers
and the workers, all running the same command; ``DMLC_ROLE`` tells each process what it is
(``import mxnet`` turns scheduler and server processes into their service loops). The
processes are started by ``tools/launch.py`` from the MXNet wheel (``dmlc_tracker``), over
ssh from a hosts file, or on this machine. :func:`run_mxnet_launcher` runs that script
unchanged after two compatibility fixes for current Pythons (see :func:`patch_dmlc_tracker`).
"""
import atexit
import logging
import os
import runpy
import sys
import threading
import time

import mxnet as mx

__all__ = ["create_kvstore", "close_kvstore", "DistGradientReducer", "StepWatchdog",
           "mxnet_launcher_path", "patch_dmlc_tracker", "run_mxnet_launcher", "stop_job"]


def create_kvstore(name, contexts):
    """The kvstore for ``name`` and these devices, or ``None`` when one device needs none.

    Parameters
    ----------
    name : str
        ``device``, ``local``, ``nccl``, ``dist_sync`` or ``dist_device_sync``.
    contexts : list of mx.Context

    Returns
    -------
    kvstore : mx.kv.KVStore or None
    rank : int
        This worker's rank (0 without a ``dist`` kvstore).
    workers : int
        How many workers the job has (1 without a ``dist`` kvstore).
    """
    if name.startswith("dist_async"):
        raise ValueError(f"--kvstore {name}: asynchronous updates are not supported "
                         "(use dist_sync or dist_device_sync)")
    if name == "nccl" and any(c.device_type != "gpu" for c in contexts):
        raise ValueError("--kvstore nccl needs GPU contexts (use device or local on CPU)")
    if "dist" in name:
        if "DMLC_ROLE" not in os.environ:
            raise RuntimeError(f"--kvstore {name} needs the processes started by MXNet's "
                               "launcher (scripts/launch_dist.py); DMLC_ROLE is not set")
        kv = mx.kv.create(name)
        return kv, kv.rank, kv.num_workers
    if len(contexts) == 1:
        return None, 0, 1
    return mx.kv.create(name), 0, 1


def close_kvstore(kv):
    """Shut a ``dist`` kvstore down now: the last pushes complete, then ps-lite's exit barrier.

    Left to the garbage collector, a worker's kvstore is freed during interpreter shutdown,
    after MXNet's own exit handler has stopped its engine: we saw a worker abort there
    ("terminate called without an active exception") while the other waited for it in the
    barrier for ever. Every worker calls this at the same point (the end of a successful run);
    the object must not be used afterwards (its handle is released; its own ``__del__`` then
    frees nothing).
    """
    from mxnet.base import _LIB, KVStoreHandle, check_call

    if kv is None or not kv.handle:
        return
    mx.nd.waitall()
    handle, kv.handle = kv.handle, KVStoreHandle()
    check_call(_LIB.MXKVStoreFree(handle))


class DistGradientReducer:
    """Sum the gradients of all distributed workers through dedicated kvstore buffers.

    ``Trainer.step`` would push and pull each gradient array itself. On CPU, MXNet 1.9's
    ``dist`` kvstore then uses the gradient array as its own send / receive buffer, and with
    asynchronous execution we saw a worker's backward pass mix with the previous step's pull:
    a few runs in ten of the loopback test ended with the wrong parameters (identical on every
    worker, so nothing else notices). Copying each gradient into a buffer that only the
    kvstore touches, pushing and pulling that buffer, and copying the sum back removed it
    (every run of the test equal to the single-process result). The extra cost is two copies
    of the gradients per step.

    Parameters
    ----------
    kv : mx.kv.KVStore
        A ``dist_*`` kvstore.
    params : list of Parameter
        In the trainer's order. Rank 0's values are copied to every worker on construction.
    ctx : mx.Context
        Where the buffers live (the first training device).
    key_offset : int
        First kvstore key; keys ``0 .. len(params)-1`` belong to the ``Trainer`` (it
        broadcasts the initial weights through them).
    """

    def __init__(self, kv, params, ctx, key_offset):
        self.kv = kv
        keys = [key_offset + i for i in range(len(params))]
        bufs = [p.data(ctx).copy() for p in params]
        if keys:
            # initialising a key stores rank 0's value; pulling it gives every worker rank 0's
            # parameters (running statistics included) before the first step
            kv.init(keys, bufs)
            kv.pull(keys, out=bufs)
            for p, b in zip(params, bufs):
                for d in p.list_data():
                    b.copyto(d)
        self.items = [(k, p, b) for k, p, b in zip(keys, params, bufs) if p.grad_req != "null"]

    def __call__(self):
        """All-reduce (sum) every parameter's gradients, on every device, in place."""
        for key, param, buf in self.items:
            grads = param.list_grad()
            if len(grads) == 1:
                grads[0].copyto(buf)
            else:
                mx.nd.add_n(*[g.as_in_context(buf.context) for g in grads], out=buf)
            self.kv.push(key, buf, priority=-key)
            self.kv.pull(key, out=buf, priority=-key)
            for g in grads:
                buf.copyto(g)


class StepWatchdog:
    """Stop a distributed worker whose training makes no progress for ``timeout`` seconds.

    ps-lite has no timeouts: when one worker dies, the others wait in their next push or pull
    for ever, and the dead worker's own exit waits in the kvstore's shutdown barrier. A
    daemon thread watches the time since the last :meth:`beat`; past the timeout it logs an
    error naming the rank, the last finished iteration and the likely cause, flushes the log
    handlers and ends the process with exit status 3 (``os._exit``: a blocked kvstore call
    cannot be interrupted any other way). A worker whose training failed (:meth:`fail`)
    cannot shut its kvstore down (the others wait for its gradients, not in the exit
    barrier), and MXNet 1.9.1 aborts a process that exits with a ``dist`` kvstore open: it
    ends with exit status 1 once the interpreter has printed the error (an ``atexit``
    handler, ahead of MXNet's), or :attr:`FAILED_GRACE` seconds after the failure (or
    ``timeout``, if shorter) with status 3 if it is still running then.
    ``gluonfr-launch-dist`` then stops the other processes of the job at once.

    Parameters
    ----------
    timeout : float
        Seconds without progress; must exceed the longest pause a healthy run has (rank 0's
        verification and checkpoint writing, during which the other workers wait).
    rank : int
    logger : logging.Logger
    where : callable, optional
        Returns a short description of the progress so far (e.g. the last iteration).
    """

    EXIT_STATUS = 3
    FAILED_STATUS = 1
    #: Seconds a failed worker is given to report its error before it is ended.
    FAILED_GRACE = 30.0

    def __init__(self, timeout, rank, logger, where=None):
        self.timeout = float(timeout)
        self.rank = int(rank)
        self.logger = logger
        self.where = where or (lambda: "")
        self.failed = None
        self._last = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"gluonfr-watchdog-{rank}",
                                        daemon=True)
        self._thread.start()

    def beat(self):
        """Record progress (after each iteration and each callback)."""
        self._last = time.monotonic()

    def fail(self, err):
        """Note that this worker failed: it exits with status 1 (or 3, see above)."""
        if self.failed is None:
            atexit.register(self._exit, self.FAILED_STATUS)
        self.failed = err
        self.beat()

    def stop(self):
        """The run ended normally: stop watching."""
        self._stop.set()

    def _watch(self):
        while not self._stop.wait(min(self.timeout / 4, 5.0)):
            idle = time.monotonic() - self._last
            failed = self.failed is not None
            if idle < (min(self.timeout, self.FAILED_GRACE) if failed else self.timeout):
                continue
            if failed:
                msg = (f"rank {self.rank}: training failed ({type(self.failed).__name__}: "
                       f"{self.failed}); its kvstore cannot shut down (the other workers "
                       "wait for its gradients); exiting")
            else:
                msg = (f"rank {self.rank}: no training progress for {self.timeout:g} s "
                       f"({self.where()}): another worker has probably failed or hangs "
                       "(see its log); stopping this worker")
            self.logger.error(msg)
            self._exit(self.EXIT_STATUS)

    def _exit(self, status):
        for handler in list(self.logger.handlers) + list(logging.getLogger().handlers):
            try:
                handler.flush()
            except Exception:  # noqa: BLE001  (nothing may stop the exit)
                pass
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(status)


def mxnet_launcher_path():
    """Path of ``tools/launch.py`` inside the installed MXNet package."""
    path = os.path.join(os.path.dirname(mx.__file__), "tools", "launch.py")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: MXNet's launcher is not part of this MXNet install")
    return path


def _proc_stat(pid):
    """The fields of ``/proc/PID/stat`` after the command name (state, ppid, ...), or ``None``
    if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _descendants(pid):
    """The PIDs of every process below ``pid`` (from ``/proc``), parents before children."""
    children = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        stat = _proc_stat(entry)
        if stat is not None:
            children.setdefault(int(stat[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(0), []):
            found.append(child)
            todo.append(child)
    return found


def _running(pid):
    """Whether ``pid`` exists and is not a zombie (an ended process nobody reaped yet)."""
    stat = _proc_stat(pid)
    return stat is not None and stat[0] != "Z"


_STOPPING = threading.Lock()


def stop_job(what, status, grace=5.0):
    """End the launcher and every process it started: one of them (``what``) failed.

    dmlc_tracker waits for each process of a job; when one dies the scheduler waits for it
    for ever, and so does the launcher. This logs which process ended with which status,
    sends SIGTERM to every descendant of the launcher, SIGKILL to those left after ``grace``
    seconds, and exits with ``status`` (a signal ``-N`` as ``128 + N``, as a shell reports it).
    """
    import signal

    if not _STOPPING.acquire(blocking=False):
        # the processes this stop kills end their own waiting threads here: the first
        # failure is the one to report, and the first stop exits for all
        while True:
            time.sleep(60)
    code = 128 - status if status < 0 else (status if 0 < status < 256 else 1)
    logging.getLogger("gluonfr").error(
        f"gluonfr-launch-dist: {what} exited with status {status}: stopping the job's other "
        "processes")
    logging.shutdown()
    sys.stderr.flush()
    if os.path.isdir("/proc"):
        pids = _descendants(os.getpid())
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
            deadline = time.monotonic() + grace
            while sig == signal.SIGTERM and time.monotonic() < deadline:
                pids = [p for p in pids if _running(p)]
                if not pids:
                    break
                time.sleep(0.1)
    os._exit(code)


def _check_call_or_stop(what):
    """``subprocess.check_call`` that stops the job (:func:`stop_job`) when the process fails."""
    import subprocess

    def check_call(*args, **kwargs):
        try:
            return subprocess.check_call(*args, **kwargs)
        except subprocess.CalledProcessError as err:
            stop_job(what, err.returncode)

    return check_call


def _local_exec(cmd, num_attempt, role, taskid, pass_env):
    """``dmlc_tracker.local.exec_cmd``: one process of a local job; its failure ends the job."""
    import subprocess

    env = dict(os.environ, **{k: str(v) for k, v in pass_env.items()})
    env.update(DMLC_TASK_ID=str(taskid), DMLC_ROLE=role, DMLC_JOB_CLUSTER="local")
    ret = subprocess.call(" ".join(cmd), shell=True, executable="bash", env=env)
    if ret != 0:
        stop_job(f"a {role} (launcher task {taskid})", ret)


def patch_dmlc_tracker(host_ip=None):
    """Make ``dmlc_tracker`` (shipped with MXNet 1.9) run on Python >= 3.9, and fail fast.

    * ``Thread.isAlive`` was removed in Python 3.9; the tracker still calls it.
    * The tracker advertises the scheduler at the address of the default route (it replaces
      127.x on purpose); ``host_ip`` pins it, e.g. ``127.0.0.1`` for jobs on one machine.
    * A process of the job (scheduler, server, worker, or an ssh session to one) that exits
      with a non-zero status ends the whole job (:func:`stop_job`) instead of leaving the
      others waiting for it. (So ``--local-num-attempt`` makes no retries: a restarted
      process could not rejoin a running ps-lite job anyway.)
    """
    import types

    if not hasattr(threading.Thread, "isAlive"):
        threading.Thread.isAlive = threading.Thread.is_alive
    from dmlc_tracker import local, ssh, tracker

    if host_ip:
        tracker.get_host_ip = lambda hostIP=None: host_ip
    for module, what in ((tracker, "the scheduler"), (ssh, "an ssh session of the job")):
        module.subprocess = types.SimpleNamespace(check_call=_check_call_or_stop(what))
    local.exec_cmd = _local_exec


def run_mxnet_launcher(argv, host_ip=None):
    """Run MXNet's ``tools/launch.py`` with ``argv`` in this process.

    Parameters
    ----------
    argv : list of str
        Its command line, e.g. ``["-n", "2", "-s", "1", "--launcher", "local", "python",
        "scripts/train.py", "--kvstore", "dist_sync", ...]``.
    host_ip : str, optional
        Address the scheduler is advertised at (default: the tracker's choice). For
        ``--launcher local`` it defaults to ``127.0.0.1`` and every process binds to loopback.
    """
    argv = list(argv)
    local = "local" in argv[argv.index("--launcher") + 1: argv.index("--launcher") + 2] \
        if "--launcher" in argv else False
    if local:
        host_ip = host_ip or "127.0.0.1"
        os.environ.setdefault("DMLC_NODE_HOST", host_ip)
    patch_dmlc_tracker(host_ip)
    saved = sys.argv
    sys.argv = [mxnet_launcher_path()] + argv
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
    finally:
        sys.argv = saved
