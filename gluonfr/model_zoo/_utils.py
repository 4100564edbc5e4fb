"""Small helpers shared by the network definitions."""


def final_map_size(input_size, stride=16):
    """(height, width) of the last feature map for ``input_size`` (int or pair) at ``stride``.

    Raises
    ------
    ValueError
        When a side is not a positive multiple of ``stride``.
    """
    height, width = (input_size, input_size) if isinstance(input_size, int) else input_size
    if min(height, width) < stride or height % stride or width % stride:
        raise ValueError(f"input_size must be positive multiples of {stride}, "
                         f"got {input_size!r}")
    return height // stride, width // stride
