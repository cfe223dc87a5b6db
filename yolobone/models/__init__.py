"""Model building blocks, the YAML builder and the model classes.

Importing this package registers every block and the `neck:` composition files (explicit imports below, no star
imports).
"""
# registration side effect:
from yolobone.models import (backbones, blocks, c2f, compose, ghost, heads, heads_af, psa, transformer,  # noqa: F401
                             yolov7_blocks, yolov7_heads)
from yolobone.models.base import YAMLModel
from yolobone.models.classification import ClassificationModel
from yolobone.models.loading import load_model, model_from_checkpoint
from yolobone.models.parse import load_model_yaml, parse_model
from yolobone.models.registry import ModelConfigError, get_block, register_block, registered_names
from yolobone.models.summary import model_summary
from yolobone.models.yolo import DetectionModel, build_model

__all__ = ["YAMLModel", "DetectionModel", "ClassificationModel", "build_model", "load_model", "model_from_checkpoint",
           "parse_model", "load_model_yaml", "model_summary", "ModelConfigError", "register_block", "get_block",
           "registered_names"]
