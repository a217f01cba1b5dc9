"""``python -m idrs_lightning.dual --experts ... --sigmas ... --router-sigma ... --out ...``: see
:mod:`idrs_lightning.dual.command`."""

from idrs_lightning.dual.command import main

if __name__ == "__main__":
    main()
