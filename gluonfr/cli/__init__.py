"""The ``gluonfr-*`` command lines.

One module per command, ``gluonfr/cli/<command>.py`` with ``main(argv=None)`` returning the
exit status: a thin argparse layer over library functions. Each is registered in setup.py's
``CONSOLE_SCRIPTS`` as ``gluonfr-<command>=gluonfr.cli.<command>:main``, runs as
``python -m gluonfr.cli.<command>``, and ``scripts/<command>.py`` in a checkout only calls it.
Exit status 0 on success and 2 on bad input, reported as one ``<command>: error: ...`` line.
"""
import argparse
import functools
import sys

from gluonfr._optional import MissingDependencyError

__all__ = ["command_parser", "exits_on_bad_input"]

#: what a user's input or environment can cause: bad paths, malformed files, a missing extra
BAD_INPUT = (OSError, ValueError, MissingDependencyError)


def command_parser(prog, doc):
    """The argparse parser of command ``prog``, with ``--version``.

    Its ``--help`` shows ``doc`` as written; ``--version`` prints ``<prog> <gluonfr version>``.

    Parameters
    ----------
    prog : str
        The installed command name (``gluonfr-train``), shown in usage and error lines.
    doc : str
        The command module's docstring: a summary line, then examples.
    """
    from gluonfr import __version__

    parser = argparse.ArgumentParser(prog=prog, description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                        help="print the gluonfr version and exit")
    return parser


def exits_on_bad_input(prog):
    """Decorate a command's ``main``: :data:`BAD_INPUT` errors become one line and status 2.

    The library's messages name the file, record or argument at fault, so the command prints
    ``<prog>: error: <message>`` (as argparse does for bad flags) instead of a traceback.
    """
    def decorate(main):
        @functools.wraps(main)
        def run(argv=None):
            try:
                return main(argv)
            except BAD_INPUT as err:
                print(f"{prog}: error: {err}", file=sys.stderr)
                return 2
        return run
    return decorate
