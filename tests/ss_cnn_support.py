"""The kernel sizes of the published SS-CNN MNIST layer, shared by the SS-CNN tests."""

from __future__ import annotations


MNIST_SIZES = (5, 7, 9, 11, 13)
