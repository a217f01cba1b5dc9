"""Training: the LightningModule with Gaussian augmentation, the training command (LightningCLI),
resumes and W&B sweeps."""
