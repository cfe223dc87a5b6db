"""Object detection: the training task, validation (COCO AP), prediction and detect.py/val.py runs."""
