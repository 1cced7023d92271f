"""Every registered layer kind through the shared layer harness."""

from __future__ import annotations

import pytest
from layer_harness import run_layer_test

from involution_bench.kinds import LAYER_KINDS, Shape

BATCH = 2


@pytest.mark.filterwarnings("ignore:The model does not have any trainable weights")
@pytest.mark.parametrize("name", LAYER_KINDS)
def test_every_layer_kind_passes_the_layer_harness(name, tmp_path):
    kind = LAYER_KINDS[name]
    args = kind.arguments.model_validate(kind.example).model_dump(mode="json")
    start = Shape(9, 11, 4, features=6 if kind.takes == "flat" else None)
    after = kind.output_shape(start, args)

    def batched(shape: Shape) -> tuple[int, ...]:
        sizes = (shape.features,) if shape.flat else (shape.height, shape.width, shape.channels)
        return (BATCH, *sizes)

    run_layer_test(
        kind.layer_class(),
        args,
        input_shape=batched(start),
        expected_output_shape=batched(after),
        # What the kind declares of itself (kinds/<kind>.py), counted here on the built layer.
        expected_num_trainable_weights=kind.weights(args)[0],
        expected_num_non_trainable_weights=kind.weights(args)[1],
        tmp_path=tmp_path,
    )
