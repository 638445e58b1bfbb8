"""torchvision's published per-weight figures against the plugin, under both ``ops`` conventions.

    pip install torchvision                          # not a dependency of the project
    python bench/torchvision_table.py                # count, save bench/results/torchvision.json
    python bench/torchvision_table.py --markdown docs/accuracy.md   # and rewrite the table there
    python bench/torchvision_table.py --render-only --markdown docs/accuracy.md

Every classification weight enum of ``torchvision.models`` (``get_model_weights(name)``) has
its published cost in ``meta["_ops"]`` ("GFLOPS" in torchvision's docs, in fact GMACs: a
multiply-add counts once, convolutions, matrix products and attention only). Each model is
built with ``weights=None`` (nothing is downloaded) inside ``pytest_flopbudget.abstract()``
(fake tensors: no memory, no compute), at the weight's evaluation crop size
(``weights.transforms().crop_size``: 224 for most, 299 for Inception, 384 or 518 for the SWAG
weights, up to 600 for EfficientNet-B7), and counted with the plugin's public API only:

* ``count_model(model, x, ops="dense")`` and ``count_model(model, x, ops="fvcore")``
  (abstract models are counted by the torch backend);
* with ``--real-below G`` (default 1), models whose dense count is below G GMACs are built
  again with real tensors and counted by the fvcore backend (a JIT trace of a real forward)
  under both conventions, to check the two backends agree;
* ``torch.utils.flop_counter.FlopCounterMode`` total / 2 on the same fake model, as a peer.

Models sharing a builder and a crop size are counted once; models already in the results
file are kept (``--only a,b`` counts those again). A model that cannot be built or
counted is recorded with its error. This is a docs and benchmark script, never a CI test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models import get_model, get_model_weights, list_models

from pytest_flopbudget import abstract, count_model

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "torchvision.json"
START = "<!-- torchvision-table:start -->"
END = "<!-- torchvision-table:end -->"
THRESHOLD = 0.01


def weights_to_measure() -> list[dict[str, Any]]:
    rows = []
    for name in sorted(list_models(module=torchvision.models)):
        for weight in get_model_weights(name):
            crop = getattr(weight.transforms(), "crop_size", None) or weight.meta["min_size"]
            size = int(crop[0])
            rows.append(
                {
                    "model": name,
                    "weight": f"{type(weight).__name__}.{weight.name}",
                    "size": size,
                    "published_gmacs": float(weight.meta["_ops"]),
                }
            )
    return rows


def builder_kwargs(name: str, size: int) -> dict[str, Any]:
    """ViTs fix their position embeddings to the image size the weights were trained at."""
    return {"image_size": size} if name.startswith("vit_") else {}


@contextlib.contextmanager
def values_not_needed() -> Iterator[None]:
    """``nn.init.trunc_normal_`` reads its samples (``mask.any()``) since torch 2.14, which a
    fake tensor cannot answer; counting needs shapes, not values, so it is skipped."""
    saved = torch.nn.init.trunc_normal_
    torch.nn.init.trunc_normal_ = lambda tensor, *args, **kwargs: tensor  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.nn.init.trunc_normal_ = saved


def build(name: str, size: int, fake: bool) -> tuple[torch.nn.Module, torch.Tensor]:
    if not fake:
        torch.manual_seed(0)
        return get_model(name, weights=None, **builder_kwargs(name, size)).eval(), torch.randn(
            1, 3, size, size
        )
    with values_not_needed(), abstract():
        model = get_model(name, weights=None, **builder_kwargs(name, size)).eval()
        return model, torch.zeros(1, 3, size, size)


def flop_counter_mode_macs(model: torch.nn.Module, x: torch.Tensor) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as peer:
        model(x)
    return int(peer.get_total_flops()) // 2


def measure(name: str, size: int, real_below: float) -> dict[str, Any]:
    """Abstract first; a model whose construction or forward reads tensor values (RegNet
    computes its widths with tensors, Swin fills its shifted-window mask from a real scalar)
    is built and counted with real tensors on the torch backend instead."""
    started = time.perf_counter()
    result: dict[str, Any] = {}
    try:
        model, x = build(name, size, fake=True)
        dense = count_model(model, x, ops="dense")
        fvcore = count_model(model, x, ops="fvcore")
        result["flopcountermode_macs"] = flop_counter_mode_macs(model, x)
        result["abstract"] = True
    except Exception as error:
        result["abstract"] = f"no: {type(error).__name__}"
        model, x = build(name, size, fake=False)
        dense = count_model(model, x, ops="dense", backend="torch")
        fvcore = count_model(model, x, ops="fvcore", backend="torch")
        result["flopcountermode_macs"] = flop_counter_mode_macs(model, x)
    result.update(
        dense_macs=dense.macs,
        fvcore_macs=fvcore.macs,
        params=dense.params,
        backend=dense.backend,
        unknown_ops=dict(dense.unknown_ops) | dict(fvcore.unknown_ops),
    )
    del model, x
    if dense.macs < real_below * 1e9:
        model, x = build(name, size, fake=False)
        result["fvcore_backend_dense_macs"] = count_model(model, x, ops="dense").macs
        result["fvcore_backend_fvcore_macs"] = count_model(model, x, ops="fvcore").macs
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def run(real_below: float, only: set[str] | None) -> list[dict[str, Any]]:
    rows = weights_to_measure()
    previous = {}
    if RESULTS.exists():
        previous = {
            (row["model"], row["size"]): row
            for row in json.loads(RESULTS.read_text())["weights"]
            if "dense_macs" in row  # measured (rows after an interrupted run are not)
        }
    measured: dict[tuple[str, int], dict[str, Any]] = {}
    for row in rows:
        key = (row["model"], row["size"])
        if key not in measured:
            if (
                key in previous
                and "error" not in previous[key]
                and not (only is not None and row["model"] in only)
            ):
                old = previous[key]
                measured[key] = {k: v for k, v in old.items() if k not in _PER_WEIGHT}
            else:
                try:
                    measured[key] = measure(*key, real_below)
                except Exception as error:  # recorded, the table says so
                    measured[key] = {"error": f"{type(error).__name__}: {error}"[:300]}
                    traceback.print_exc(file=sys.stderr)
                print(row["model"], row["size"], measured[key], file=sys.stderr, flush=True)
        row.update(measured[key])
        save(rows)
    return rows


_PER_WEIGHT = ("model", "weight", "size", "published_gmacs")


def save(rows: list[dict[str, Any]]) -> None:
    document = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "unit": "MACs (published_gmacs: GMACs, as torchvision's meta['_ops'])",
        "weights": rows,
    }
    RESULTS.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")


# --------------------------------------------------------------------------------------------
# the table

NOTES = {
    "ln": "LayerNorms (fvcore: 5 MACs per element)",
    "bn": "BatchNorms (fvcore: 2 MACs per element in eval)",
    "pool": "adaptive average pooling (fvcore: 1 MAC per input element)",
    "se": "squeeze-and-excitation pooling",
}


def gap(counted: int | None, published: float) -> float | None:
    return None if counted is None else counted / (published * 1e9) - 1


def render(rows: list[dict[str, Any]], explanations: dict[str, str]) -> str:
    lines = [
        "| weight | size | published GMACs | dense | vs published | fvcore's | vs published"
        " | FlopCounterMode / 2 | note |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    agree_dense = agree_fvcore = counted = 0
    for row in rows:
        published = row["published_gmacs"]
        if "error" in row:
            lines.append(
                f"| {row['weight']} | {row['size']} | {published:.3f} | fails | | | | | "
                f"{row['error'].splitlines()[0][:80]} |"
            )
            continue
        counted += 1
        dense_gap = gap(row["dense_macs"], published)
        fvcore_gap = gap(row["fvcore_macs"], published)
        assert dense_gap is not None and fvcore_gap is not None
        agree_dense += abs(dense_gap) <= THRESHOLD
        agree_fvcore += abs(fvcore_gap) <= THRESHOLD
        note = ""
        if abs(dense_gap) > THRESHOLD or abs(fvcore_gap) > THRESHOLD:
            note = explanations.get(row["weight"]) or explanations.get(row["model"], "")
        lines.append(
            f"| {row['weight']} | {row['size']} | {published:.3f} | {row['dense_macs'] / 1e9:.3f}"
            f" | {_percent(dense_gap)} | {row['fvcore_macs'] / 1e9:.3f} | {_percent(fvcore_gap)}"
            f" | {row['flopcountermode_macs'] / 1e9:.3f} | {note} |"
        )
    summary = (
        f"{counted} of {len(rows)} weights counted; within 1% of the published figure: "
        f'{agree_dense} under `ops = "dense"`, {agree_fvcore} under `ops = "fvcore"`.'
    )
    return "\n".join([summary, "", *lines])


def _percent(value: float | None) -> str:
    if value is None:
        return "-"
    text = f"{value:+.1%}"
    return f"**{text}**" if abs(value) > THRESHOLD else text


def write_markdown(path: Path, table: str) -> None:
    text = path.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise SystemExit(f"{path}: add the markers {START} and {END} where the table goes")
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    path.write_text(f"{head}{START}\n{table}\n{END}{tail}", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--markdown", type=Path, help="rewrite the table in this file")
    parser.add_argument("--render-only", action="store_true", help="use the saved results")
    parser.add_argument("--real-below", type=float, default=1.0, metavar="GMACS")
    parser.add_argument(
        "--only", help="comma-separated model names to count again (others saved are kept)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.render_only:
        rows = json.loads(RESULTS.read_text())["weights"]
    else:
        only = set(args.only.split(",")) if args.only else None
        rows = run(args.real_below, only)
    table = render(rows, EXPLANATIONS)
    print(table)
    if args.markdown:
        write_markdown(args.markdown, table)


_BN_EVERYWHERE = (
    "fvcore's: batch norms on every expanded feature map (2 MACs per element) are a large "
    "share of a network whose depthwise convolutions are cheap"
)
_SE = _BN_EVERYWHERE + ", plus the squeeze-and-excitation blocks' average pooling"
_ROUNDED = "dense: the published figure is rounded to 0.001 GMACs, 1.2% of this small model"

EXPLANATIONS: dict[str, str] = {
    "densenet121": "fvcore's: a batch norm before every convolution, on the concatenated features",
    "densenet169": "fvcore's: a batch norm before every convolution, on the concatenated features",
    "densenet201": "fvcore's: a batch norm before every convolution, on the concatenated features",
    **{f"efficientnet_b{i}": _SE for i in range(8)},
    **{name: _BN_EVERYWHERE for name in ("mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3")},
    "mobilenet_v2": _BN_EVERYWHERE,
    "mobilenet_v3_large": _SE,
    "mobilenet_v3_small": _SE,
    "shufflenet_v2_x0_5": f"{_ROUNDED}; fvcore's: " + _BN_EVERYWHERE.split(": ", 1)[1],
    **{f"shufflenet_v2_x{w}": _BN_EVERYWHERE for w in ("1_0", "1_5", "2_0")},
    **{f"regnet_x_{w}": _BN_EVERYWHERE.replace("depthwise", "group") for w in ("400mf", "800mf")},
    **{f"regnet_y_{w}": _SE.replace("depthwise", "group") for w in ("400mf", "800mf", "1_6gf")},
}
"""Per model, why a gap over 1% is there (see docs/accuracy.md for the numbers behind them)."""


if __name__ == "__main__":
    main()
