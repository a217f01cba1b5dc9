"""``python -m idrs_lightning.training fit ...``: see :mod:`idrs_lightning.training.command`."""

from idrs_lightning.training.command import run_from_command_line

if __name__ == "__main__":
    run_from_command_line()
