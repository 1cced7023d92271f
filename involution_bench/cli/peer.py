"""`invbench bench peer`: invbench's training step beside PyTorch's for the same network."""

from __future__ import annotations

from rich.table import Column, Table

from involution_bench.cli.app import ConfigFiles, Overrides, make_console
from involution_bench.cli.bench import (
    JsonFlag,
    Repeats,
    Rounds,
    bench_app,
    echo_json,
    load_configs_then_tensorflow,
    machine_caption,
)


@bench_app.command("peer")
def bench_peer(
    config: ConfigFiles,
    overrides: Overrides = None,
    repeats: Repeats = 10,
    rounds: Rounds = 1,
    as_json: JsonFlag = False,
) -> None:
    """One training step of each config's network in invbench and in PyTorch
    (channels-last and NCHW), alternating in one process. Needs PyTorch installed;
    involution and attention have no PyTorch peer."""
    configs = load_configs_then_tensorflow(config, overrides)
    from involution_bench.bench import peer

    for experiment in configs:
        peer.peer_model(experiment)  # every config checked before the first is timed
    timings = [
        timing
        for experiment in configs
        for timing in peer.bench_peer(experiment, repeats, rounds=rounds)
    ]
    if as_json:
        echo_json(timings)
        return
    by_round = ("by round",) if rounds > 1 else ()
    table = Table(
        "config",
        Column("framework", no_wrap=True),
        "version",
        "step ms",
        "/ invbench",
        *by_round,
        caption=machine_caption(),
    )
    for timing in timings:
        each = " ".join(f"{ratio:.2f}" for ratio in timing.round_against_invbench)
        table.add_row(
            timing.config,
            timing.framework,
            timing.version,
            f"{timing.step_milliseconds:.1f}",
            f"{timing.against_invbench:.2f}",
            *((each,) if by_round else ()),
        )
    make_console().print(table)
