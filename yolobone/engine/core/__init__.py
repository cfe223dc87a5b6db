"""The training loop, its hooks and what every task shares: checkpoints, options, DDP, loggers, optimizer."""
