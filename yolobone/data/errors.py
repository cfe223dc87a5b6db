"""The data layer's error type, in its own module so every reader can raise it without importing the others."""
from yolobone.utils.errors import YoloboneError


class DatasetError(YoloboneError, ValueError):
    """A data YAML or dataset that cannot be used; the message names the file and what is wrong."""
