"""Reproduce a result of the IDRS paper, the paper's numbers beside ours.

    python -m idrs_lightning.paper list
    python -m idrs_lightning.paper table1 [--out DIR] [--scale tiny|quick|study|paper]
    python -m idrs_lightning.paper all --scale quick
    python -m idrs_lightning.paper fmnist --scale quick --control untrained   # negative control

Each ID writes ``DIR/ID/``: its figures (PNG), ``table.md`` (paper | ours | difference |
verdict, with the settings and sample sizes used) and ``results.json``, and prints the table;
``all`` runs every ID that fits the scale and writes the index ``DIR/README.md``.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from idrs_lightning.errors import OneLineParser, exit_on_user_error
from idrs_lightning.paper.core import CONTROLS, SCALES, Context, Outcome, Reproduction
from idrs_lightning.paper.output import write_index, write_outcome
from idrs_lightning.paper.registry import REPRODUCTIONS
from idrs_lightning.validation import InvalidSetting

log = logging.getLogger(__name__)


def chosen(name: str, scale: str) -> list[Reproduction]:
    """The reproductions an ID (or ``all``) names at this scale."""
    if name == "all":
        return [item for item in REPRODUCTIONS.values() if scale in item.scales]
    if name not in REPRODUCTIONS:
        known = ", ".join(REPRODUCTIONS)
        raise InvalidSetting("id", f"unknown reproduction {name!r}; choose one of: {known}, all")
    return [REPRODUCTIONS[name]]


def run(
    reproduction: Reproduction,
    folder: Path,
    scale: str,
    data_root: str,
    control: str | None = None,
) -> Outcome:
    """Run one reproduction into ``folder/ID`` (``folder/ID-CONTROL`` for a negative control)
    and print its table."""
    out = folder / (reproduction.id if control is None else f"{reproduction.id}-{control}")
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    outcome = reproduction.run(Context(out, scale, data_root, control))
    outcome.settings["wall_seconds"] = round(time.perf_counter() - start, 1)
    sys.stdout.write(write_outcome(out, reproduction, scale, outcome) + "\n")
    return outcome


def listing() -> str:
    rows = []
    for item in REPRODUCTIONS.values():
        needs = f" [needs {item.needs}]" if item.needs else ""
        rows.append(
            f"{item.id:8s} {item.kind:10s} {item.title}{needs}  (all: {', '.join(item.scales)})"
        )
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("id", help="a reproduction ID, 'list' or 'all'")
    parser.add_argument("--out", default="paper-results", help="parent folder of DIR/ID")
    parser.add_argument("--scale", choices=SCALES, default="quick")
    parser.add_argument("--data-root", default="data", help="where MNIST / CIFAR-10 live")
    parser.add_argument(
        "--control",
        choices=sorted(CONTROLS),
        default=None,
        help="run as a negative control (a model that learnt nothing): no row may agree or hold",
    )
    args = parser.parse_args(argv)
    if args.id == "list":
        sys.stdout.write(listing())
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logging.getLogger("idrs_lightning").addHandler(handler)
    logging.getLogger("idrs_lightning").setLevel(logging.INFO)
    selected = exit_on_user_error(lambda: chosen(args.id, args.scale), {"id": "ID"})
    folder = Path(args.out)
    written = []
    for reproduction in selected:
        outcome = exit_on_user_error(
            lambda item=reproduction: run(item, folder, args.scale, args.data_root, args.control)
        )
        written.append((reproduction, outcome))
    if args.id == "all":
        write_index(folder, args.scale, written)


if __name__ == "__main__":
    main()
