"""``python -m idrs_lightning.certify_job CKPT OUT ...``: see
:mod:`idrs_lightning.certify_job.command`."""

from idrs_lightning.certify_job.command import main

if __name__ == "__main__":
    main()
