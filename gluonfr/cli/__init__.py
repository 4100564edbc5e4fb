"""The ``gluonfr-*`` command lines.

One module per command, ``gluonfr/cli/<command>.py`` with ``main(argv=None)`` returning the
exit status: a thin argparse layer over library functions. Each is registered in setup.py's
``CONSOLE_SCRIPTS`` as ``gluonfr-<command>=gluonfr.cli.<command>:main``, runs as
``python -m gluonfr.cli.<command>``, and ``scripts/<command>.py`` in a checkout only calls it.
"""
import argparse

__all__ = ["command_parser"]


def command_parser(prog, doc):
    """The argparse parser of command ``prog``; its ``--help`` shows ``doc`` as written.

    Parameters
    ----------
    prog : str
        The installed command name (``gluonfr-train``), shown in usage and error lines.
    doc : str
        The command module's docstring: a summary line, then examples.
    """
    return argparse.ArgumentParser(prog=prog, description=doc,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
