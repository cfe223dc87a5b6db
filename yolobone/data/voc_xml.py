"""Read Pascal VOC splits: an ImageSets list of ids, Annotations/<id>.xml, JPEGImages/<file>.

XML goes through defusedxml, which refuses entity declarations (billion-laughs bombs) and external references.
VOC pixel coordinates start at 1: x1 = xmin - 1 and x2 = xmax - 1, as YOLOv5's VOC converter reads them.
``difficult`` objects are left out, as VOC's evaluation ignores them. Class order is the data YAML's ``names``
(objects of other classes are dropped and listed) or else the sorted object names of all splits.
"""
from __future__ import annotations

import functools
import os
import xml.etree.ElementTree as ET
from typing import Dict, List, Optional, Sequence, Set, Tuple

import numpy as np
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import parse as safe_parse

from yolobone.data.annotated import AnnotatedSplit, AnnotationError, check_unique_ids, rows_per_image

VocObject = Tuple[str, bool, Tuple[float, float, float, float]]  # name, difficult, (xmin, ymin, xmax, ymax)


def voc_ids(list_file: str) -> List[str]:
    """Image ids of an ImageSets list (first word of each line; class lists carry a second column)."""
    try:
        lines = open(list_file, encoding="utf-8-sig").read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise AnnotationError(f"{list_file}: cannot read the VOC image list ({type(e).__name__}: {e})") from None
    ids = [line.split()[0] for line in lines if line.strip()]
    if not ids:
        raise AnnotationError(f"{list_file}: the VOC image list is empty")
    return ids


def _number(node: Optional[ET.Element], path: str, what: str) -> float:
    try:
        return float(node.text)  # type: ignore[union-attr]
    except (AttributeError, TypeError, ValueError):
        raise AnnotationError(f"{path}: {what} is missing or not a number") from None


@functools.lru_cache(maxsize=65536)
def _read_xml_cached(path: str, mtime_ns: int, size: int) -> Tuple[Optional[str], Tuple[float, float], List[VocObject]]:
    try:
        root = safe_parse(path).getroot()
    except DefusedXmlException as e:
        raise AnnotationError(f"{path}: refused, the XML declares entities or external references "
                              f"(a possible XML bomb: {type(e).__name__})") from None
    except ET.ParseError as e:
        raise AnnotationError(f"{path}: not valid XML ({e})") from None
    size_node = root.find("size")
    wh = (_number(root.find("size/width"), path, "<size><width>"),
          _number(root.find("size/height"), path, "<size><height>")) if size_node is not None else (0.0, 0.0)
    if min(wh) <= 0:
        raise AnnotationError(f"{path}: <size> needs a positive <width> and <height>")
    objects = []
    for k, obj in enumerate(root.iter("object")):
        name = (obj.findtext("name") or "").strip()
        if not name:
            raise AnnotationError(f"{path}: <object> {k} has no <name>")
        where = f"<object> {k} ({name})"
        box = tuple(_number(obj.find(f"bndbox/{t}"), path, f"{where} <bndbox><{t}>")
                    for t in ("xmin", "ymin", "xmax", "ymax"))
        objects.append((name, (obj.findtext("difficult") or "0").strip() == "1", box))
    return root.findtext("filename"), wh, objects


def read_voc_xml(path: str) -> Tuple[Optional[str], Tuple[float, float], List[VocObject]]:
    """(filename or None, (width, height), objects) of one VOC annotation file; parsed once per file version."""
    try:
        st = os.stat(path)
    except OSError:
        raise AnnotationError(f"{path}: VOC annotation file not found") from None
    return _read_xml_cached(path, st.st_mtime_ns, st.st_size)


def voc_object_names(list_files: Sequence[str], ann_dir: Dict[str, str]) -> List[str]:
    """Sorted names of every object in the splits (the class order when the data YAML gives no names)."""
    names: Set[str] = set()
    for lf in list_files:
        for i in voc_ids(lf):
            names.update(o[0] for o in read_voc_xml(os.path.join(ann_dir[lf], f"{i}.xml"))[2])
    return sorted(names)


def read_voc(list_file: str, ann_dir: str, img_dir: str, names: Sequence[str]) -> AnnotatedSplit:
    """Parse the split listed in list_file; classes follow `names` (objects of other classes are dropped)."""
    list_file = os.path.abspath(list_file)
    index = {n: k for k, n in enumerate(names)}
    split = AnnotatedSplit(source=list_file, names=list(names), category_ids=list(range(len(names))))
    img, cls, boxes, where, problems = [], [], [], [], []
    ids = voc_ids(list_file)
    check_unique_ids(ids, list_file, "lines")
    for i in ids:
        xml = os.path.join(ann_dir, f"{i}.xml")
        if not os.path.isfile(xml):
            raise AnnotationError(f"{list_file}: id {i!r}: annotation file not found: {xml}")
        filename, (w, h), objects = read_voc_xml(xml)
        split.inputs.append(xml)
        k = len(split.files)
        split.files.append(os.path.normpath(os.path.join(img_dir, filename or f"{i}.jpg")))
        split.sizes.append((int(w), int(h)))
        split.image_ids.append(i)
        split.entries.append(f"id {i!r} ({xml})")
        for j, (name, difficult, (x1, y1, x2, y2)) in enumerate(objects):
            if difficult:
                split.ignored += 1
            elif name not in index:
                problems.append((xml, f"<object> {j}: class {name!r} is not in names, dropped"))
            else:
                img.append(k)
                cls.append(index[name])
                boxes.append([(x1 - 1) / w, (y1 - 1) / h, (x2 - 1) / w, (y2 - 1) / h])
                where.append(f"{xml}: <object> {j} ({name})")
    rows, box_problems = rows_per_image(len(split.files), np.array(img, np.int64), np.array(cls, np.int64),
                                        np.array(boxes, np.float64).reshape(-1, 4), lambda j: where[j], list_file)
    split.labels, split.problems = rows, problems + box_problems
    return split
