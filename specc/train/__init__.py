"""Training: losses, metrics, optimizers, the fit/evaluate/predict loops and progress output."""
