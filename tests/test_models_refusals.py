"""Refusals of the model builders that need more than one argument's value.

A `/` in the model name and a `preprocessing` layer whose output the
convolutional blocks cannot take were refused by Keras only after every layer
was built, with Keras' own messages; they now get the standard message first.
"""

from __future__ import annotations

import re

import keras
import pytest

from kerasx.models import build_cnn, build_mlp, build_selu_mlp


@pytest.mark.parametrize(
    "build",
    [
        lambda name: build_mlp((8,), 3, hidden_units=(4,), name=name),
        lambda name: build_selu_mlp((8,), 3, hidden_units=(4,), name=name),
        lambda name: build_cnn((8, 8, 3), 3, filters=(4,), name=name),
    ],
    ids=["mlp", "selu_mlp", "cnn"],
)
def test_names_with_a_slash_are_refused(build):
    message = (
        "Invalid value received for argument `name`. Expected None or a "
        "non-empty string without '/'. Received: name='a/b'"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        build("a/b")


def test_cnn_preprocessing_must_keep_the_image_layout():
    message = (
        "Invalid value received for argument `preprocessing`. Expected a layer "
        "whose output is (height, width, channels) with known channels. "
        "Received: preprocessing=<layer 'flat' with output shape (192,)>"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        build_cnn(
            (8, 8, 3), 3, filters=(4,), preprocessing=keras.layers.Flatten(name="flat")
        )


def test_cnn_spatial_size_is_checked_after_preprocessing():
    message = (
        "Invalid value received for argument `filters`. Expected at most as many "
        "blocks as halvings of the spatial size (2, 2) after preprocessing allow "
        "with downsample='maxpool'. Received: filters=(4, 4)"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        build_cnn(
            (8, 8, 3),
            3,
            filters=(4, 4),
            preprocessing=keras.layers.MaxPooling2D(4),
        )
    model = build_cnn(
        (8, 8, 3), 3, filters=(4,), preprocessing=keras.layers.MaxPooling2D(4)
    )
    assert model.output_shape == (None, 3)
