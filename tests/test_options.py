"""Options declared once: every flag of the YOLOv5-style scripts is generated from one dataclass field (default, help,
aliases, check), and the fields' checks name the flag."""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import List, Optional, Union

import pytest

from yolobone.cli import compare as compare_cli
from yolobone.cli import detect as detect_cli
from yolobone.cli import export as export_cli
from yolobone.cli import train as train_cli
from yolobone.cli import val as val_cli
from yolobone.engine.classify import predict_run as classify_predict
from yolobone.engine.classify import task as classify_task
from yolobone.engine.classify import val_run as classify_val
from yolobone.engine.classify.options import ClassifyOptions
from yolobone.engine.compare.options import CompareError, CompareOptions
from yolobone.engine.core.options import TrainConfigError
from yolobone.engine.detect.options import DetectOptions
from yolobone.engine.detect.predict_run import DetectConfig
from yolobone.engine.detect.val_run import ValConfig
from yolobone.engine.export import ExportConfig
from yolobone.utils.cli import task_of
from yolobone.utils.options import add_options, at_least, check_options, flag_of, option, option_fields, to_argv


PARSERS = {
    "train.py": (train_cli.build_parser, (DetectOptions, train_cli.SearchOptions)),
    "train.py --task classify": (classify_task.build_parser, (ClassifyOptions,)),
    "val.py": (val_cli.build_parser, (ValConfig,)),
    "compare.py": (compare_cli.build_parser, (CompareOptions,)),
    "export.py": (export_cli.build_parser, (ExportConfig,)),
}


def _cli_fields(*classes: type) -> set:
    return {f.name for cls in classes for f, _, meta in option_fields(cls) if meta.get("cli", True)}


@pytest.mark.parametrize("script", sorted(PARSERS))
def test_every_flag_is_one_dataclass_field(script: str) -> None:
    build, classes = PARSERS[script]
    parser = build()
    dests = {a.dest for a in parser._actions if a.dest != "help"}
    assert dests == _cli_fields(*classes)
    for cls in classes:  # the parser's defaults are the fields' defaults
        defaults = {f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
                    for f in dataclasses.fields(cls)}
        for a in parser._actions:
            if a.dest in defaults:
                assert a.default == defaults[a.dest], (script, a.dest)
                assert a.help, (script, a.dest)  # every flag has its help text


@pytest.mark.parametrize("main, cls", [(detect_cli.parse_opt, DetectConfig),
                                       (classify_val.parse_opt, classify_val.ClassifyValConfig),
                                       (classify_predict.parse_opt, classify_predict.ClassifyPredictConfig)])
def test_parse_functions_give_their_dataclass(main, cls) -> None:
    opt = main(["--weights", "w.pt", "--source", "s"] if "source" in _cli_fields(cls) else ["--weights", "w.pt"])
    assert set(vars(opt)) == _cli_fields(cls)
    assert cls(**vars(opt)).weights == "w.pt"


@dataclass
class _Base:
    epochs: int = option(100, "training epochs", check=at_least(1))
    imgsz: int = option(640, "image size", aliases=("--img",))
    cache: Optional[str] = option(None, "image cache", nargs="?", const="ram")
    rect: bool = option(False, "rectangular batches")
    pretrained: bool = option(True, "load pretrained weights")
    speedups: bool = option(True, "plain loop", flag="--no-speedups", action="store_false")
    freeze: List[Union[int, str]] = option(help="layers to freeze", factory=lambda: [0])
    classes: Optional[List[int]] = option(None, "class filter")
    hidden: str = option("x", "set by code only", cli=False)


@dataclass
class _Child(_Base):
    epochs: int = 10  # a new default; help and check come from _Base


def test_types_aliases_and_inheritance_make_the_expected_flags() -> None:
    p = add_options(argparse.ArgumentParser(), _Child)
    o = p.parse_args(["--img", "320", "--cache", "--rect", "--pretrained", "false", "--no-speedups", "--freeze", "0",
                      "1", "--classes", "2", "3"])
    assert vars(o) == {"epochs": 10, "imgsz": 320, "cache": "ram", "rect": True, "pretrained": False,
                       "speedups": False, "freeze": ["0", "1"], "classes": [2, 3]}
    assert "--hidden" not in p.format_help() and "training epochs" in p.format_help()
    assert flag_of(_Child, "speedups") == "--no-speedups" and flag_of(_Child, "imgsz") == "--imgsz"
    with pytest.raises(ValueError, match=r"^--epochs 0: expected >= 1$"):
        check_options(_Child(epochs=0), ValueError)


def test_to_argv_round_trips_through_the_generated_parser() -> None:
    p = add_options(argparse.ArgumentParser(), _Child)
    o = _Child(epochs=3, imgsz=320, cache="disk", rect=True, pretrained=False, speedups=False, freeze=["backbone"],
               classes=[1])
    argv = to_argv(o)
    assert argv[:2] == ["--epochs", "3"] and "--hidden" not in argv
    assert _Child(**vars(p.parse_args(argv))) == dataclasses.replace(o, hidden="x")
    assert to_argv(_Child()) == []  # defaults are not written


@pytest.mark.parametrize("cls, values, error, message", [
    (DetectOptions, {"epochs": 0}, TrainConfigError, "--epochs 0: expected >= 1"),
    (DetectOptions, {"cache": "gpu"}, TrainConfigError, "--cache 'gpu': expected one of ram, disk, auto"),
    (DetectOptions, {"freeze": ["neck"]}, TrainConfigError, "--freeze neck: expected a layer count N"),
    (DetectOptions, {"compile": "fast"}, TrainConfigError, "--compile 'fast': expected one of auto, on, off"),
    (DetectOptions, {"loggers": ["tensorboard", "comet"]}, TrainConfigError, "--loggers tensorboard comet: expected"),
    (ClassifyOptions, {"hflip": 2.0}, TrainConfigError, "--hflip 2: expected a probability in [0, 1]"),
    (ClassifyOptions, {"imgsz": 8}, TrainConfigError, "--imgsz 8: expected >= 16"),
    (CompareOptions, {"cfgs": ["a.yaml"], "seeds": [1, 1]}, CompareError, "--seeds 1 1: expected each seed once"),
    (CompareOptions, {"cfgs": ["a.yaml"], "backends": ["tensorrtx"]}, CompareError, "--backends tensorrtx: expected"),
])
def test_field_checks_name_the_flag(cls, values, error, message) -> None:
    with pytest.raises(error, match="^" + message.replace("[", r"\[").replace("]", r"\]")):
        o = cls.from_any(values)
        o.check()


def test_field_checks_normalise_values() -> None:
    o = DetectOptions.from_any({"freeze": ["0", "1", "backbone"], "loggers": ("csv",), "compile": True})
    assert (o.freeze, o.loggers, o.compile) == ([0, 1, "backbone"], ["csv"], "on")


def test_one_task_dispatch_for_every_script() -> None:
    assert task_of(["--weights", "a", "--task", "classify"], "detect") == "classify"
    assert task_of(["--task=classify"], "val") == "classify"
    assert task_of(["--data", "x"], "val") == "val"
    assert task_of(["--task"], "detect") == "detect"  # argparse reports the missing value itself
