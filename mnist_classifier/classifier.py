"""The model behind `make serve`, loaded once, and the answers it gives a picture: the
predicted class (or a number's digits), every class's probability, the top 3, and the 28x28
picture the model saw. serve.py puts it behind HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import io
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mnist_classifier.normalise import PIXELS


@dataclass
class Classifier:
    """The model, loaded once, with what the answers name: its classes and identity."""

    model: Any
    classes: list[str]
    md5: str
    version: str | None
    lock: threading.Lock

    def predict(self, body: bytes, max_side: int | None = None) -> dict[str, Any]:
        """One picture's answer; PipelineError (one line) when it cannot be read. A picture
        of several digits side by side is answered as a number: `predicted` reads them left
        to right, `probability` is the chance every one is right, and `digits` holds each
        digit's own answer; for one digit its answer's fields are also at the top level."""
        from mnist_classifier.decoding import read_image
        from mnist_classifier.normalise import to_digits
        from mnist_classifier.predict import joined

        digits = to_digits(read_image(io.BytesIO(body), name="the picture", max_side=max_side), "the picture")
        with self.lock:  # one forward pass at a time: the model is shared by every request
            probs = self.model.predict(np.stack(digits).reshape(len(digits), PIXELS), verbose=0)
        each = [self._answer(p, digit) for p, digit in zip(probs, digits)]
        joint = joined([d["predicted"] for d in each], self.classes)
        answer = {
            "predicted": joint,
            "probability": round(float(np.prod([d["probability"] for d in each])), 6),
        }
        return {**answer, **(each[0] if len(each) == 1 else {}), "digits": each, "model": self.identity()}

    def _answer(self, probs: np.ndarray, digit: np.ndarray) -> dict[str, Any]:
        from PIL import Image

        order = np.argsort(-probs, kind="stable")
        png = io.BytesIO()
        Image.fromarray(digit).save(png, format="PNG")
        return {
            "predicted": self.classes[order[0]],
            "probability": round(float(probs[order[0]]), 6),
            "probabilities": {c: round(float(p), 6) for c, p in zip(self.classes, probs)},
            "top3": [{"class": self.classes[i], "probability": round(float(probs[i]), 6)} for i in order[:3]],
            "digit": "data:image/png;base64," + base64.b64encode(png.getvalue()).decode(),
        }

    def identity(self) -> dict[str, str | None]:
        return {"md5": self.md5, "version": self.version}


def load_classifier(model_path: Path, version: str | None) -> Classifier:
    """The model checked as predict checks it, with the class names of params.yaml's dataset."""
    from mnist_classifier.predict import checked_model, class_names

    classes = class_names()
    model = checked_model(model_path, len(classes))
    md5 = hashlib.md5(model_path.read_bytes()).hexdigest()
    return Classifier(model, classes, md5, version, threading.Lock())
