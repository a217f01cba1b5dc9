"""Train a base classifier for (input-dependent) randomized smoothing.

    python train.py fit                                   # small Fashion-MNIST default
    python train.py fit --config configs/cifar10_resnet110.yaml --data.sigma_b=0.25
    python train.py fit --data.trr=0.04 --model.lr=0.05 --trainer.max_epochs=3

Every hyperparameter is a LightningCLI option (``python train.py fit --help``); each run
writes its config, CSV logs, an offline W&B run and checkpoints to its own ``runs/<name>``.
A bad value is one line ``error: ...`` naming its option, exit status 2 (``IDRS_DEBUG=1``
shows the traceback). The command itself is :mod:`idrs_lightning.training.command`.
"""

from idrs_lightning.training.command import run_from_command_line

if __name__ == "__main__":
    run_from_command_line()
