"""The one image reader (gluonfr.data.image): paths, bytes and arrays, both channel orders,
and errors that name the source; checked against OpenCV's own decoder."""
from gluonfr.data import DataFormatError
from gluonfr.data.image import decode_image, read_image

import cv2
import mxnet as mx
import numpy as np
import pytest


def _image():
    rng = np.random.default_rng(0)
    img = np.zeros((20, 30, 3), np.uint8)
    img[..., 0] = 200  # a distinct value per channel: a channel swap cannot go unnoticed
    img[..., 1] = 90
    img[..., 2] = rng.integers(0, 40, size=(20, 30))
    return img


def test_path_bytes_and_array_agree_with_opencv(tmp_path):
    bgr = _image()
    path = tmp_path / "face.png"
    assert cv2.imwrite(str(path), bgr)  # PNG: lossless, so exact equality
    want_bgr = cv2.imread(str(path))
    np.testing.assert_array_equal(read_image(path, "bgr"), want_bgr)
    np.testing.assert_array_equal(read_image(str(path)), want_bgr[:, :, ::-1])  # rgb default
    data = path.read_bytes()
    np.testing.assert_array_equal(read_image(data, "rgb"), want_bgr[:, :, ::-1])
    np.testing.assert_array_equal(decode_image(bytearray(data), "x", "bgr"), want_bgr)
    # arrays are taken as already in the requested order: validated, not converted
    arr = np.asfortranarray(bgr)
    out = read_image(arr, "bgr")
    assert out.flags["C_CONTIGUOUS"] and np.array_equal(out, bgr)
    np.testing.assert_array_equal(read_image(mx.nd.array(bgr, dtype="uint8")), bgr)


def test_errors_name_the_source(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jpg: no such image file"):
        read_image(tmp_path / "nope.jpg")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(DataFormatError, match=r"broken\.jpg: not a readable image: cannot "
                                              r"decode the image bytes \(20 bytes"):
        read_image(broken)
    with pytest.raises(DataFormatError, match=r"record 7: cannot decode the image bytes \(0 "):
        read_image(b"", where="record 7")
    with pytest.raises(DataFormatError, match=r"image array: expected .* got dtype float32 "
                                              r"and shape \(4, 4, 3\)"):
        read_image(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(DataFormatError, match=r"shape \(4, 4\)"):
        read_image(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="color must be 'rgb' or 'bgr'"):
        read_image(b"x", color="hsv")
