"""Backbone families, one module each; importing registers their blocks."""
from yolobone.models.backbones import common, hgnet, res2net, resnet, timm_wrap, torchvision_wrap  # noqa: F401  (registration)
