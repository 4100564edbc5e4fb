"""The one error for an unknown registry name: the close matches and every known name."""
import difflib

__all__ = ["unknown_name_error"]


def unknown_name_error(what, name, known, plural=None):
    """``ValueError("unknown <what> 'x'. Did you mean a, b? Known <what>s: ...")``.

    Parameters
    ----------
    what : str
        What the name names (``"model"``, ``"loss"``).
    name : str
        The name asked for.
    known : iterable of str
        Every registered name.
    plural : str, optional
        The plural of ``what`` (default ``what + "s"``).
    """
    known = sorted(known)
    close = difflib.get_close_matches(str(name).lower(), known, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    plural = plural or what + "s"
    return ValueError(f"unknown {what} {name!r}.{hint} Known {plural}: {', '.join(known)}")
