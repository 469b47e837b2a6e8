"""Drive every explorer widget as a browser would, without a browser; print a JSON summary.

Run in a subprocess by tests/test_explore.py and tests/test_imbalance.py, under the
ipywidgets this environment has (8, as in JupyterLab 4) or, with ``.venv/ipywidgets7``
first on ``PYTHONPATH``, under ipywidgets 7.7 as Google Colab ships it.

    python tests/widget_check.py probability logit naive batch imbalance

For each explorer: what a display sends (the widget view, and a PNG and a line of
text for static views), the frames that the first view's message asks for, and
what moving each control does (a fast control picks another frame of the same
payload; a kernel control brings a new payload).
"""

import base64
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ipywidgets  # noqa: E402

from grader import explore, imbalance  # noqa: E402

MAKERS = {name: make for name, (make, _, _) in explore.EXPLORERS.items()}
MAKERS["imbalance"] = imbalance.imbalance_explorer


def other(options, value):
    values = [v for _, v in options]
    return values[-1] if value != values[-1] else values[0]


def summary(name: str) -> dict:
    widget = MAKERS[name]()
    data, metadata = widget._repr_mimebundle_()
    png = base64.b64decode(data["image/png"])
    widget._message(widget, {"event": "view"}, [])  # a browser shows it: the frames are computed
    payload = widget.payload
    controls = widget._controls
    fast = [c for c in controls if not c.kernel]
    moves = {}
    for control in controls:
        before_index, before_payload = dict(widget.index), widget.payload
        value = other(control.options, widget.params[control.name])
        widget.update(**{control.name: value})
        moves[control.name] = {
            "kind": control.kind, "kernel": control.kernel,
            "index_changed": widget.index != before_index,
            "params_follow": widget.params[control.name] == value,
            "new_payload": widget.payload is not before_payload,
            "options": [text for text, _ in control.options],
        }
    return {
        "mime": sorted(data), "png": png[:8] == b"\x89PNG\r\n\x1a\n",
        "png_size": metadata.get("image/png"), "text": data["text/plain"],
        "frames": len(payload["frames"]), "expected_frames": math.prod(len(c.options) for c in fast),
        "backgrounds": len(payload["backgrounds"]), "moves": moves,
        "spec": {k: widget.spec[k] for k in ("width", "height", "scale")},
    }


if __name__ == "__main__":
    names = sys.argv[1:] or list(MAKERS)
    print(json.dumps({"version": ipywidgets.__version__, **{name: summary(name) for name in names}}))
