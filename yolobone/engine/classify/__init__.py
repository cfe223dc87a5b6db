"""Image classification: the training task, ImageFolder data, validation (top-1/top-5), prediction, plots."""
