"""The live view draws each animal of a multi-animal model in its identity's colour."""

from __future__ import annotations

import numpy as np

from deeplabstream.outputs.pose.drawing import IDENTITY_COLOURS, draw_animals_on, identity_colour


def _animal(x: float, y: float, likelihood: float = 0.9) -> np.ndarray:
    return np.array([[x, y, likelihood], [x + 20, y, likelihood]], np.float64)


def test_each_identity_is_drawn_in_its_own_colour_and_hidden_ones_are_not():
    canvas = np.zeros((120, 200, 3), np.uint8)
    animals = np.stack([_animal(30, 30), _animal(30, 90), np.full((2, 3), np.nan)])
    animals[1, 1, 2] = 0.1  # below the threshold: not drawn
    draw_animals_on(canvas, animals, threshold=0.5, skeleton_indices=((0, 1),))
    assert tuple(canvas[30, 30]) == identity_colour(0)
    assert tuple(canvas[30, 50]) == identity_colour(0)
    assert tuple(canvas[90, 30]) == identity_colour(1)
    assert tuple(canvas[90, 50]) == (0, 0, 0)  # the hidden keypoint, and no line to it
    assert tuple(canvas[90, 40]) == (0, 0, 0)
    assert identity_colour(0) != identity_colour(1)


def test_identities_beyond_the_palette_reuse_it_in_turn():
    assert identity_colour(len(IDENTITY_COLOURS)) == identity_colour(0)


def test_an_uncertain_identity_is_labelled_with_its_confidence():
    """After a merge the number carries the confidence ('2 ?62%'); a sure one stands alone."""
    animals = np.stack([_animal(30, 30), _animal(30, 90)])
    sure, doubtful = np.zeros((120, 200, 3), np.uint8), np.zeros((120, 200, 3), np.uint8)
    draw_animals_on(sure, animals, 0.5, confidence=np.array([0.99, 0.99]))
    draw_animals_on(doubtful, animals, 0.5, confidence=np.array([0.99, 0.62]))
    # The first animal's label is the same; the second's is longer (its percentage).
    np.testing.assert_array_equal(sure[:60], doubtful[:60])
    label_row = slice(60, 90)
    assert (doubtful[label_row] != 0).sum() > (sure[label_row] != 0).sum()
