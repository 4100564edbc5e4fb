"""Start a multi-machine training job with MXNet's own launcher (parameter server, ps-lite).

MXNet's ``tools/launch.py`` (shipped in the mxnet wheel) starts one scheduler, ``-s`` servers
and ``-n`` workers, all running the same command; this wrapper runs it unchanged after fixing
its tracker for Python >= 3.9 (see ``gluonfr.engine.distributed``). Put the training command
after ``--``; it must use ``--kvstore dist_sync`` (or ``dist_device_sync``)::

    # 2 workers + 1 server on this machine (loopback)
    gluonfr-launch-dist -n 2 -s 1 --launcher local -- \\
        gluonfr-train --kvstore dist_sync --data-dir data/faces_emore ...

    # a cluster: one host per line in hosts.txt (ssh without password, same paths everywhere)
    gluonfr-launch-dist -n 4 -s 4 -H hosts.txt --launcher ssh -- \\
        gluonfr-train --kvstore dist_device_sync --gpus 0,1,2,3 ...

Every option before ``--`` is MXNet's (``-n``, ``-s``, ``-H``, ``--launcher``,
``--sync-dst-dir``, ``--env``); ``--host-ip`` pins the address workers use to reach the
scheduler (default: ``127.0.0.1`` for ``--launcher local``, else the tracker's guess).
"""
import shlex
import sys

from gluonfr.cli import command_parser
from gluonfr.engine.distributed import run_mxnet_launcher

__all__ = ["main"]

USAGE = "gluonfr-launch-dist [MXNet launcher options] [--host-ip IP] -- COMMAND ..."


def main(argv=None):
    """Run MXNet's launcher on the command after ``--``; return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        # the options are MXNet's, so argparse only shows the help or the usage error
        parser = command_parser("gluonfr-launch-dist", __doc__)
        parser.usage = USAGE
        parser.parse_args([a for a in argv if a in ("-h", "--help")])
        parser.print_usage(sys.stderr)
        print("gluonfr-launch-dist: error: put the training command after --", file=sys.stderr)
        return 2
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1:]
    host_ip = None
    if "--host-ip" in options:
        i = options.index("--host-ip")
        if i + 1 >= len(options):
            print("gluonfr-launch-dist: error: --host-ip needs an address", file=sys.stderr)
            return 2
        host_ip = options[i + 1]
        del options[i:i + 2]
    # one token: otherwise launch.py's and dmlc_tracker's parsers take the command's own
    # options (e.g. --num-workers, -n, -s) as theirs
    run_mxnet_launcher(options + [shlex.join(command)], host_ip=host_ip)
    return 0


if __name__ == "__main__":
    sys.exit(main())
