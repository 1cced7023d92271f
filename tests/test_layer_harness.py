"""Every registered layer kind through the shared layer harness."""

from __future__ import annotations

import pytest
from layer_harness import run_layer_test

from involution_bench.layer_kinds import LAYER_KINDS, Shape

# Weight tensors per kind, counted by hand: kernel and bias; an involution's
# reduce (kernel, bias), batch norm (gamma, beta, moving mean and variance)
# and span (kernel, bias); batch norm's four; attention's fused q/k/v projection
# and its row and column position embeddings.
EXPECTED_WEIGHTS = {
    "conv2d": 2,
    "involution": 8,
    "local_attention": 3,
    "dense": 2,
    "batch_norm": 4,
}
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
        expected_num_weights=EXPECTED_WEIGHTS.get(name, 0),
        tmp_path=tmp_path,
    )
