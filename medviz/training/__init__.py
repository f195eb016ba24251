"""The training run: config to built objects, the fit, its callbacks, checkpoints, outputs and sweeps."""
