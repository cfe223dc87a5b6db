"""Model building blocks, the YAML builder and the model classes.

Importing this package registers every block (explicit imports below, no star imports).
"""
from models import backbones, blocks, ghost, heads, transformer  # noqa: F401  (registration side effect)
from models.base import YAMLModel
from models.classification import ClassificationModel
from models.loading import load_model, model_from_checkpoint
from models.parse import load_model_yaml, parse_model
from models.registry import ModelConfigError, get_block, register_block, registered_names
from models.summary import model_summary
from models.yolo import DetectionModel, build_model

__all__ = ["YAMLModel", "DetectionModel", "ClassificationModel", "build_model", "load_model", "model_from_checkpoint",
           "parse_model", "load_model_yaml", "model_summary", "ModelConfigError", "register_block", "get_block",
           "registered_names"]
