"""Bounded YAML reading (yolobone/utils/yaml_io.py): alias bombs, huge and recursive documents are refused in one line,
for model, data and hyp YAMLs alike; ordinary documents (aliases included) read as before."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from yolobone.models.parse import load_model_yaml
from yolobone.models.registry import ModelConfigError
from yolobone.data.config import DatasetError, check_dataset
from yolobone.utils.hyp import HypError, load_hyp
from yolobone.utils.yaml_io import MAX_BYTES, MAX_NODES, YAMLFileError, expanded_size, load_yaml, load_yaml_document

ROOT = Path(__file__).resolve().parents[1]


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """"Billion laughs": level k is a list repeating level k-1 `width` times (9 levels of 9: 387 million items)."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"l{k}: &l{k} [{', '.join([f'*l{k - 1}'] * width)}]" for k in range(1, levels)]
    return "\n".join(lines) + "\n"


def _one_line(e: pytest.ExceptionInfo, path: Path) -> str:
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg, msg
    return msg


def test_alias_bomb_as_model_yaml(tmp_path):
    cfg = tmp_path / "bomb-model.yaml"
    cfg.write_text("nc: 80\n" + alias_bomb() + "backbone: [[-1, 1, Conv, [64, 6, 2, 2]]]\nhead: *l8\n")
    with pytest.raises(ModelConfigError) as e:
        load_model_yaml(cfg)
    assert f"more than {MAX_NODES} nodes once its aliases are expanded" in _one_line(e, cfg)


def test_alias_bomb_as_data_yaml(tmp_path):
    data = tmp_path / "bomb-data.yaml"
    (tmp_path / "images").mkdir()
    data.write_text(alias_bomb() + "train: images\nval: images\nnames: *l8\n")
    with pytest.raises(DatasetError) as e:
        check_dataset(data)
    assert "aliases are expanded" in _one_line(e, data)


def test_alias_bomb_as_hyp_yaml_and_through_the_cli(tmp_path, capsys):
    hyp = tmp_path / "bomb-hyp.yaml"
    hyp.write_text(alias_bomb() + "lr0: 0.01\n")
    with pytest.raises(HypError) as e:
        load_hyp(hyp)
    _one_line(e, hyp)
    from yolobone.cli.train import main
    assert main(["--cfg", str(ROOT / "configs/yolov5n.yaml"), "--hyp", str(hyp), "--device", "cpu",
                 "--project", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "bomb-hyp.yaml" in err[0], err


def test_expansion_is_counted_not_performed():
    """The counter sizes each distinct node once: it stops at the limit without building the expansion."""
    node = yaml.compose("a: &x [1, 2]\nb: *x\nc: [*x, *x]\n", Loader=yaml.SafeLoader)
    assert expanded_size(node) == 1 + (1 + 3) + (1 + 3) + (1 + 1 + 3 + 3)
    bomb = yaml.compose(alias_bomb(levels=30, width=2), Loader=yaml.SafeLoader)  # 2 ** 30 items
    with pytest.raises(Exception, match="more than 1000 nodes"):
        expanded_size(bomb, limit=1000)
    assert expanded_size(bomb, limit=2 ** 32) > 2 ** 30  # 30 levels: sized in linear time


def test_size_recursion_and_syntax_bounds(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("names: [" + ", ".join(["abcdefghij"] * (MAX_BYTES // 12 + 1)) + "]\n")
    with pytest.raises(YAMLFileError, match="larger than 1024 KiB") as e:
        load_yaml(big)
    _one_line(e, big)
    many = tmp_path / "many.yaml"
    many.write_text("[" + ",".join(["0"] * (MAX_NODES + 1)) + "]\n")  # small text, too many nodes
    with pytest.raises(YAMLFileError, match=f"more than {MAX_NODES} nodes"):
        load_yaml(many)
    loop = tmp_path / "loop.yaml"
    loop.write_text("a: &a [1, *a]\n")
    with pytest.raises(YAMLFileError, match="recursive alias"):
        load_yaml(loop)
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: 1\nb: [2\n")
    with pytest.raises(YAMLFileError, match=r"bad.yaml:3: invalid YAML"):
        load_yaml(bad)


def test_ordinary_documents_still_read(tmp_path):
    f = tmp_path / "ok.yaml"
    names = [f"class{i}" for i in range(20000)]  # a 20k-class names list is within the bounds
    f.write_text(yaml.safe_dump({"base": {"lr0": 0.01}, "names": names}) + "copy: &c {x: 1}\nmerged: {<<: *c, y: 2}\n")
    data, node = load_yaml_document(f)
    assert data["names"] == names and data["merged"] == {"x": 1, "y": 2}
    assert node.start_mark.line == 0
    (tmp_path / "empty.yaml").write_text("")
    assert load_yaml_document(tmp_path / "empty.yaml") == (None, None)
    spec = load_model_yaml(ROOT / "configs/yolov5s.yaml")
    assert spec.row_lines[0] is not None and len(spec.row_lines) == len(spec.rows)
