"""The NumPy box helpers the builder uses instead of torchvision's, on masks and boxes with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from streetsynth.instances import box_iou, boxes_from_masks


def test_boxes_from_masks_are_tight_with_an_exclusive_max_corner():
    masks = np.zeros((3, 6, 8), bool)
    masks[0, 1:3, 2:6] = True
    masks[1, 5, 7] = True  # one pixel in the last row and column
    masks[2, [0, 4], [1, 3]] = True  # two separate pixels: the box spans both
    assert boxes_from_masks(masks).tolist() == [[2, 1, 6, 3], [7, 5, 8, 6], [1, 0, 4, 5]]


@pytest.mark.parametrize("n", [0, 1])
def test_boxes_from_empty_masks(n):
    boxes = boxes_from_masks(np.zeros((n, 4, 5), bool))
    assert boxes.shape == (n, 4) and boxes.dtype == np.float32 and not boxes.any()


def test_box_iou_known_overlaps():
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 5]], np.float32)  # the second box has no area
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150, 1.0, 0.0], [0.0, 0.0, 0.0]], rtol=1e-6)
    assert box_iou(a, np.zeros((0, 4))).shape == (2, 0)
