"""Run a W&B sweep file locally, without a W&B server: sequential runs, each logged offline.

    python -m idrs_lightning.training.sweep configs/sweeps/grid_sigma_trr.yaml \
        [--max-runs N] [-- EXTRA]

Parameters come from W&B's own ``sweeps`` package (the engine behind ``wandb sweep``): grid
and random files expand as they would on the server; a Bayesian file is sampled at random
here, since its model needs the server. Each run executes the file's ``command`` exactly as a
``wandb agent`` would (``${args}`` as ``--name=value``), with any EXTRA arguments appended.
The runs of one invocation share a W&B group (``WANDB_RUN_GROUP``: the file's name and the
start time, unless set) and each is named by its parameters.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from idrs_lightning.errors import OneLineParser, exit_on_user_error
from idrs_lightning.reporting.wandb_logging import GROUP_VARIABLE
from idrs_lightning.training.config_files import load_yaml

log = logging.getLogger(__name__)

#: Run commands checked at the same time before a sweep starts.
CHECKS_AT_ONCE = 4


def load_sweep(path: str | os.PathLike) -> dict:
    """A sweep file, checked with W&B's schema; one ValueError listing every violation."""
    from sweeps import schema_violations_from_proposed_config

    config = load_yaml(path)
    if not isinstance(config, dict):
        raise ValueError(f"{path} is not a sweep: it holds no mapping of settings")
    violations = schema_violations_from_proposed_config(config)
    if violations:
        raise ValueError(f"{path} is not a valid sweep: " + "; ".join(violations))
    return config


def parameter_sets(config: dict, max_runs: int | None = None, seed: int = 0) -> list[dict]:
    """The parameter values of successive runs, as W&B's sweep engine proposes them."""
    import numpy as np
    from sweeps import RunState, SweepRun, next_run

    local = dict(config)
    if local["method"] == "bayes":
        local["method"] = "random"
    if local["method"] == "random" and max_runs is None:
        raise ValueError("a random or Bayesian sweep needs max_runs (--max-runs)")
    np.random.seed(seed)  # noqa: NPY002 - the sweeps package draws from numpy's global RNG
    runs: list[SweepRun] = []
    while max_runs is None or len(runs) < max_runs:
        proposal = next_run(local, runs)
        if proposal is None:
            break
        proposal.state = RunState.finished
        runs.append(proposal)
    return [{name: _plain(item["value"]) for name, item in run.config.items()} for run in runs]


def _plain(value: object) -> object:
    """numpy scalars (random draws) as Python numbers, so that they print as plain values."""
    return value.item() if hasattr(value, "item") else value


def command_line(config: dict, parameters: dict, extra: list[str] = ()) -> list[str]:
    """The command a ``wandb agent`` runs for these parameters."""
    args = [f"--{name}={value}" for name, value in parameters.items()]
    macros = {
        "${interpreter}": [sys.executable],
        "${program}": [config["program"]],
        "${args}": args,
    }
    template = config.get("command", ["${env}", "${interpreter}", "${program}", "${args}"])
    line = [part for item in template if item != "${env}" for part in macros.get(item, [item])]
    return [*line, *extra]


def check_commands(lines: list[list[str]], runs: list[dict]) -> None:
    """Let the training CLI check every run's command without training (``--check_only``:
    parse, build the model and data settings, no run directory), a few at a time, so that a
    bad key or value in any run fails before the first run, not after others trained.

    Raises:
        ValueError: naming the first refused run (of ``runs``, its parameters), with the
            CLI's own message.
    """
    for start in range(0, len(lines), CHECKS_AT_ONCE):
        batch = lines[start : start + CHECKS_AT_ONCE]
        pending = [
            subprocess.Popen(
                [*line, "--check_only=true"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for line in batch
        ]
        for number, process in enumerate(pending, start + 1):
            _, stderr = process.communicate()
            if process.returncode:
                errors = [row for row in stderr.splitlines() if row.startswith("error:")]
                reason = errors[0].removeprefix("error:").strip() if errors else stderr.strip()
                values = " ".join(f"{k}={v}" for k, v in runs[number - 1].items())
                raise ValueError(f"run {number} of this sweep ({values}) is refused: {reason}")


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", help="a sweep YAML file")
    parser.add_argument("--max-runs", type=int, help="stop after this many runs")
    parser.add_argument("--seed", type=int, default=0, help="for random / Bayesian files")
    parser.epilog = "Arguments after -- are appended to every run's command line."
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    if args.max_runs is not None and args.max_runs < 1:
        parser.error(f"--max-runs must be at least 1, got {args.max_runs}")
    args.extra = argv[split + 1 :]
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = exit_on_user_error(lambda: load_sweep(args.sweep))
    runs = exit_on_user_error(lambda: list(parameter_sets(config, args.max_runs, args.seed)))
    environment = {**os.environ}
    environment.setdefault("WANDB_MODE", "offline")
    # one W&B group per sweep; each run is named by its parameters (dashboard.run_label)
    environment.setdefault(
        GROUP_VARIABLE, f"{Path(args.sweep).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    lines = [command_line(config, parameters, args.extra) for parameters in runs]
    exit_on_user_error(lambda: check_commands(lines, runs))
    for number, line in enumerate(lines, 1):
        log.info("run %d: %s", number, " ".join(line))
        try:
            status = subprocess.run(line, env=environment).returncode
        except KeyboardInterrupt:
            sys.stderr.write(
                f"interrupted in run {number} of {len(lines)}: resume it with train.py fit "
                "--ckpt_path <its run directory>/checkpoints/last.ckpt; the later runs did not "
                "start\n"
            )
            raise SystemExit(130) from None
        if status:
            sys.stderr.write(f"error: run {number} exited with status {status}: {' '.join(line)}\n")
            raise SystemExit(status)


if __name__ == "__main__":
    main()
