"""Run a program as a distributed job on loopback through scripts/launch_dist.py (MXNet's
launcher: one scheduler, ``servers`` servers, ``workers`` workers), for the tests."""
import os
import signal
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def run_loopback_job(program_args, workers=2, servers=1, env=None, timeout=150):
    """Run ``python PROGRAM_ARGS...`` on every worker; fail the test on error or timeout.

    Returns the job's combined output (text). ``tests/`` is on the workers' ``PYTHONPATH``.
    """
    full_env = dict(os.environ, **(env or {}))
    full_env["PYTHONPATH"] = os.pathsep.join([HERE, os.environ.get("PYTHONPATH", "")])
    cmd = [sys.executable, os.path.join(REPO, "scripts", "launch_dist.py"), "-n", str(workers),
           "-s", str(servers), "--launcher", "local", "--", sys.executable] + list(program_args)
    proc = subprocess.Popen(cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher's own session: its job only
        log, _ = proc.communicate()
        pytest.fail("distributed job timed out:\n" + log.decode()[-3000:])
    text = log.decode()
    assert proc.returncode == 0, text[-3000:]
    return text
