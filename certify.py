"""Certify a trained checkpoint with randomized smoothing (constant sigma or IDRS).

    python certify.py runs/<run>/checkpoints/last.ckpt out/idrs --N 100000
    python certify.py runs/<run>/checkpoints/last.ckpt out/cohen --constant
    torchrun --nproc_per_node 2 certify.py CKPT out/idrs        # shards inputs across processes

Data and sigma(x) settings default to the training run's (stored in the checkpoint); the
options (``--help``) override them. Writes ``results.tsv`` (one row per input, resumable),
``summary.json``, ``table.txt``, plots and an offline W&B run into the output directory, and
prints the certified-accuracy table. A bad option, file or value is one line ``error: ...``
and exit status 2, before any sampling (``IDRS_DEBUG=1`` shows the traceback). The command
itself is :mod:`idrs_lightning.certify_job.command`.
"""

from idrs_lightning.certify_job.command import main

if __name__ == "__main__":
    main()
