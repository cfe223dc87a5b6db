"""Bad model YAMLs give one-line errors naming file, line, layer and what was expected (exit code 2, no traceback)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch.nn as nn

from yolobone.models import ModelConfigError, register_block
from yolobone.models.registry import get_block, same_channels
from yolobone.models.yolo import main

ROOT = Path(__file__).resolve().parents[1]

HEADER = """\
nc: 2
depth_multiple: 0.33
width_multiple: 0.25
anchors:
  - [10, 13, 16, 30, 33, 23]
  - [30, 61, 62, 45, 59, 119]
  - [116, 90, 156, 198, 373, 326]
"""
GOOD_BACKBONE = """\
backbone:
  - [-1, 1, Conv, [64, 6, 2, 2]]
  - [-1, 1, Conv, [128, 3, 2]]
  - [-1, 1, C3, [128]]
  - [-1, 1, Conv, [256, 3, 2]]
  - [-1, 1, C3, [256]]
  - [-1, 1, Conv, [512, 3, 2]]
  - [-1, 1, C3, [512]]
  - [-1, 1, Conv, [1024, 3, 2]]
  - [-1, 1, SPPF, [1024, 5]]
"""
GOOD_HEAD = """\
head:
  - [[4, 6, 8], 1, Detect, [nc, anchors]]
"""


def run_cli(tmp_path: Path, text: str, capsys) -> str:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    code = main(["--cfg", str(cfg)])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    assert str(cfg) in err
    return err


def test_good_yaml_builds(tmp_path, capsys):
    cfg = tmp_path / "good.yaml"
    cfg.write_text(HEADER + GOOD_BACKBONE + GOOD_HEAD)
    assert main(["--cfg", str(cfg)]) == 0
    assert "good summary:" in capsys.readouterr().out


def test_unknown_module(tmp_path, capsys):
    err = run_cli(tmp_path, HEADER + GOOD_BACKBONE.replace("[-1, 1, C3, [256]]", "[-1, 1, C3x3, [256]]") + GOOD_HEAD,
                  capsys)
    assert "layer 4" in err and "'C3x3'" in err and "closest known" in err and "C3" in err
    assert "bad.yaml:13" in err  # the YAML line of that row


def test_from_out_of_range(tmp_path, capsys):
    err = run_cli(tmp_path, HEADER + GOOD_BACKBONE + "head:\n  - [[4, 6, 12], 1, Detect, [nc, anchors]]\n", capsys)
    assert "layer 9" in err and "`from` 12 is out of range" in err and "0..8" in err


def test_negative_from_out_of_range(tmp_path, capsys):
    err = run_cli(tmp_path, HEADER + GOOD_BACKBONE.replace("[-1, 1, Conv, [128, 3, 2]]", "[-3, 1, Conv, [128, 3, 2]]")
                  + GOOD_HEAD, capsys)
    assert "layer 1" in err and "`from` -3" in err


def test_wrong_argument_count(tmp_path, capsys):
    err = run_cli(tmp_path, HEADER + GOOD_BACKBONE.replace("[-1, 1, SPPF, [1024, 5]]",
                                                           "[-1, 1, SPPF, [1024, 5, 7, 9]]") + GOOD_HEAD, capsys)
    assert "layer 8" in err and "SPPF" in err and "wrong arguments" in err and "k=5" in err


def test_wrong_argument_type(tmp_path, capsys):
    err = run_cli(tmp_path, HEADER + GOOD_BACKBONE.replace("[-1, 1, Conv, [256, 3, 2]]",
                                                           "[-1, 1, Conv, [wide, 3, 2]]") + GOOD_HEAD, capsys)
    assert "layer 3" in err and "expects an integer for output channels" in err and "'wide'" in err


def test_input_channel_mismatch(tmp_path, capsys):
    err = run_cli(tmp_path, HEADER + GOOD_BACKBONE.replace("[-1, 1, C3, [128]]", "[-1, 1, nn.Conv2d, [64, 32, 3, 1, 1]]")
                  + GOOD_HEAD, capsys)
    assert "layer 2" in err and "channel mismatch" in err and "in_channels=64" in err and "32 channels" in err


def test_block_whose_rule_lies_about_channels(tmp_path, capsys):
    """A block registered with a wrong channel rule is caught by the build-time dry run, naming the layer."""
    @register_block("DoublesChannelsBadly", channels=same_channels)
    class DoublesChannelsBadly(nn.Module):
        def forward(self, x):
            return x.repeat(1, 2, 1, 1)

    err = run_cli(tmp_path, HEADER + GOOD_BACKBONE.replace("[-1, 1, C3, [256]]", "[-1, 1, DoublesChannelsBadly, []]")
                  + GOOD_HEAD, capsys)
    assert "layer 4" in err and "declares 64 output channels but the layer produced 128" in err


def test_missing_head(tmp_path, capsys):
    err = run_cli(tmp_path, HEADER + GOOD_BACKBONE, capsys)
    assert "missing required key 'head'" in err


def test_missing_backbone(tmp_path, capsys):
    err = run_cli(tmp_path, HEADER + GOOD_HEAD, capsys)
    assert "missing required key 'backbone'" in err


@pytest.mark.parametrize("code", ["__import__('os').system('touch pwned')", "os.system('x')", "nc * 2",
                                  "lambda: 0"])
def test_string_that_looks_like_code(tmp_path, capsys, code):
    text = HEADER + GOOD_BACKBONE.replace("[-1, 1, SPPF, [1024, 5]]", f'[-1, 1, SPPF, [1024, "{code}"]]') + GOOD_HEAD
    err = run_cli(tmp_path, text, capsys)
    assert "looks like code" in err and "layer 8" in err
    assert not (tmp_path / "pwned").exists()


def test_bad_activation(tmp_path, capsys):
    err = run_cli(tmp_path, HEADER + "activation: __import__('os')\n" + GOOD_BACKBONE + GOOD_HEAD, capsys)
    assert "activation" in err and "not supported" in err


def test_invalid_yaml_syntax(tmp_path, capsys):
    err = run_cli(tmp_path, HEADER + GOOD_BACKBONE + "head:\n  - [[4, 6, 8], 1, Detect, [nc, anchors]\n", capsys)
    assert "invalid YAML" in err and "bad.yaml:" in err


def test_detect_anchor_levels_mismatch(tmp_path, capsys):
    err = run_cli(tmp_path, HEADER + GOOD_BACKBONE + "head:\n  - [[6, 8], 1, Detect, [nc, anchors]]\n", capsys)
    assert "3 anchor levels but 2 inputs" in err


def test_registry_duplicate_and_unknown():
    with pytest.raises(ValueError, match="already registered"):
        register_block("Conv", channels=same_channels)(type("Conv", (nn.Module,), {}))
    with pytest.raises(ModelConfigError, match="closest known: .*SPPF"):
        get_block("SPPFF")


def test_script_exit_code_without_traceback(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(textwrap.dedent(HEADER + GOOD_BACKBONE.replace("C3, [512]", "Nope, [512]") + GOOD_HEAD))
    # the script's own folder comes first on sys.path: PYTHONPATH makes `yolobone` this checkout's package
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, str(ROOT / "yolobone" / "models" / "yolo.py"), "--cfg", str(cfg)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("error: ") and "unknown module 'Nope'" in proc.stderr


@pytest.mark.parametrize("code", ["nn.LeakyReLU(x)", "nn.Conv2d(3, 8, 1)", "nn.LeakyReLU(0.1).__class__",
                                  "nn.ReLU(*[1])", "nn.LeakyReLU(__import__('os'))"])
def test_activation_argument_that_is_not_a_plain_activation(tmp_path, capsys, code):
    """Row arguments written like an activation call pass only as a whitelisted layer with literal numbers."""
    row = f'[-1, 1, Conv, [128, 3, 2, None, 1, "{code}"]]'
    text = HEADER + GOOD_BACKBONE.replace("[-1, 1, Conv, [128, 3, 2]]", row) + GOOD_HEAD
    err = run_cli(tmp_path, text, capsys)
    assert "looks like code" in err and "layer 1" in err


def test_activation_argument_in_a_row(tmp_path):
    """YOLOv7's rows: Conv [c2, k, s, p, g, nn.LeakyReLU(0.1)] puts the activation in Conv's `act`, dilation 1."""
    text = HEADER + GOOD_BACKBONE.replace("[-1, 1, Conv, [128, 3, 2]]",
                                          "[-1, 1, Conv, [128, 3, 2, None, 1, nn.LeakyReLU(0.25)]]") + GOOD_HEAD
    cfg = tmp_path / "act.yaml"
    cfg.write_text(text)
    from yolobone.models.parse import parse_model
    layers = parse_model(cfg)[0]
    conv = layers[1]
    assert isinstance(conv.act, nn.LeakyReLU) and conv.act.negative_slope == 0.25
    assert conv.conv.dilation == (1, 1) and conv.conv.stride == (2, 2)
    assert isinstance(layers[0].act, nn.SiLU)
