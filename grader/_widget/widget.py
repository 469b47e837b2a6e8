"""The explorer widget: frames computed in the kernel, drawn in the browser.

The boundary between the two sides:

- The kernel (here) owns every number. For each combination of the controls'
  values it calls the explorer's ``update`` (which computes with torch) and reads
  back what matplotlib would draw: each moving line's points and each moving
  text, already placed in the figure's CSS pixels. The parts that do not move
  (axes, ticks, labels, colour bars) are rendered by matplotlib once per layout
  as PNG backgrounds, at twice the display's pixels, one for a light and one for
  a dark theme; the legends likewise, as an overlay drawn above the data.
- The browser (client.js) only chooses a frame and draws it: no arithmetic on
  the data, no message to the kernel while a slider moves.

Controls marked ``kernel`` (a choice that needs new computation, such as
training other models) ask the kernel for a new set of frames; the view shows a
"working" state until they arrive.
"""

from __future__ import annotations

import atexit
import base64
import colorsys
import io
import itertools
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np
import PIL.Image

from .controls import Control, indices, menu, moved, slider, values  # noqa: F401 - the controls' constructors live there

HERE = Path(__file__).resolve().parent
CSS_DPI = 96  # CSS pixels per inch: a font of 10 points is 10 points on the screen at 100 %
SCALE = 2  # image pixels per CSS pixel: sharp on high-density displays

#: matplotlib settings for the two themes. The figure itself is transparent: the page shows through.
INK = {"light": "#1a1a1a", "dark": "#dcdcdc"}
THEMES = {
    "light": {"figure.facecolor": "none", "axes.facecolor": "none", "savefig.transparent": True,
              "legend.facecolor": "white", "legend.framealpha": 0.9},
    "dark": {"figure.facecolor": "none", "axes.facecolor": "none", "savefig.transparent": True,
             "text.color": INK["dark"], "axes.labelcolor": INK["dark"], "axes.edgecolor": "#9a9a9a",
             "xtick.color": "#9a9a9a", "ytick.color": "#9a9a9a", "xtick.labelcolor": INK["dark"],
             "ytick.labelcolor": INK["dark"], "legend.facecolor": "#202020", "legend.edgecolor": "#5a5a5a",
             "legend.labelcolor": INK["dark"], "legend.framealpha": 0.9, "grid.color": "#4a4a4a"},
}
#: Dash patterns in points per point of line width (matplotlib's defaults, which scale with the width).
DASHES = {"--": "lines.dashed_pattern", ":": "lines.dotted_pattern", "-.": "lines.dashdot_pattern"}
MARKERS = {"o": "o", "s": "s", "^": "^", "D": "D"}


def _hex(colour) -> str:
    from matplotlib.colors import to_hex

    return to_hex(colour, keep_alpha=False)


def dark_variant(colour) -> str:
    """The colour to draw with on a dark background: greys are mirrored (black becomes light
    grey), dark hues are lightened; bright hues stay."""
    from matplotlib.colors import to_rgb

    h, l, s = colorsys.rgb_to_hls(*to_rgb(colour))
    if s < 0.2:
        l = 0.9 - 0.7 * l
    elif l < 0.45:
        l = 0.45 + 0.5 * (0.45 - l)
    return _hex(colorsys.hls_to_rgb(h, l, s))


class _Pool:
    """Point arrays, deduplicated: frames refer to them by number."""

    def __init__(self):
        self.arrays: list[np.ndarray] = []
        self.seen: dict[bytes, int] = {}

    def add(self, points: np.ndarray) -> int:
        data = np.ascontiguousarray(points, dtype=np.float32).ravel()
        key = data.tobytes()
        if key not in self.seen:
            self.seen[key] = len(self.arrays)
            self.arrays.append(data)
        return self.seen[key]

    def pack(self) -> tuple[bytes, list]:
        offsets, start = [], 0
        for array in self.arrays:
            offsets.append([start, len(array)])
            start += len(array)
        joined = np.concatenate(self.arrays) if self.arrays else np.zeros(0, np.float32)
        return joined.astype("<f4").tobytes(), offsets


def _png(figure, *, background: str | None = None) -> bytes:
    """The figure's canvas as PNG bytes (after a draw), on ``background`` if given."""
    canvas = figure.canvas
    width, height = canvas.get_width_height(physical=True)
    image = PIL.Image.frombuffer("RGBA", (width, height), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    if background is not None:
        flat = PIL.Image.new("RGBA", image.size, background)
        flat.alpha_composite(image)
        image = flat.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="png", compress_level=1)
    return buffer.getvalue()


class Frames:
    """Every frame of an explorer for one choice of its kernel controls.

    ``make(**params)`` builds the explorer (a ``grader.explore.Explorer``); it is called
    once per theme, under that theme's matplotlib settings."""

    def __init__(self, make: Callable[..., Any], controls: list[Control], params: dict):
        import matplotlib

        self.controls = controls
        self.fast = [c for c in controls if not c.kernel]
        self._make, self._params = make, dict(params)
        self.explorers = {}
        light = self.explorer("light")
        self.figure = light.figure
        self.width, self.height = (round(v * CSS_DPI) for v in self.figure.get_size_inches())
        self.legends = [ax.get_legend() for ax in self.figure.axes if ax.get_legend()] + list(self.figure.legends)
        self.spec_artists = [self._style(a) for a in light.dynamic]

    def explorer(self, theme: str):
        """The explorer drawn with ``theme``'s settings, built on first use."""
        import matplotlib

        if theme not in self.explorers:
            with matplotlib.rc_context(THEMES[theme]):
                explorer = self._make(**self._params)
            explorer.figure.set_dpi(CSS_DPI * SCALE)
            # whole CSS pixels, each exactly SCALE image pixels: Agg truncates the figure's size in
            # pixels, so it is set a quarter of an image pixel above the size wanted
            wanted = [round(v * CSS_DPI) * SCALE for v in explorer.figure.get_size_inches()]
            explorer.figure.set_size_inches([(v + 0.25) / (CSS_DPI * SCALE) for v in wanted])
            legends = [ax.get_legend() for ax in explorer.figure.axes if ax.get_legend()]
            for artist in [*explorer.dynamic, *legends, *explorer.figure.legends]:
                artist.set_animated(True)  # left out of the backgrounds
            self.explorers[theme] = explorer
        return self.explorers[theme]

    # -- geometry ------------------------------------------------------------------------------
    def _css(self, points: np.ndarray) -> np.ndarray:
        """Display pixels (origin bottom left) to CSS pixels (origin top left)."""
        out = np.asarray(points, dtype=np.float64) / SCALE
        out[:, 1] = self.height - out[:, 1]
        return out

    def _clip(self, artist) -> list | None:
        if not artist.get_clip_on() or artist.axes is None:
            return None
        box = artist.axes.bbox
        return [box.x0 / SCALE, self.height - box.y1 / SCALE, box.width / SCALE, box.height / SCALE]

    def _style(self, artist) -> dict:
        from matplotlib.image import AxesImage
        from matplotlib.lines import Line2D
        from matplotlib.text import Text
        import matplotlib

        px = CSS_DPI / 72  # CSS pixels per point
        if isinstance(artist, Line2D):
            lw = artist.get_linewidth() * px
            style = artist.get_linestyle()
            dash = []
            if style in DASHES:
                scale = artist.get_linewidth() if matplotlib.rcParams["lines.scale_dashes"] else 1
                dash = [v * scale * px for v in matplotlib.rcParams[DASHES[style]]]
            marker = artist.get_marker()
            colour = artist.get_color()
            return {"kind": "line", "colour": [_hex(colour), dark_variant(colour)],
                    "lw": lw if style not in ("None", "none", "", " ") else 0, "dash": dash,
                    "marker": MARKERS.get(marker), "ms": artist.get_markersize() * px, "clip": self._clip(artist)}
        if isinstance(artist, Text):
            colour = artist.get_color()
            # a label on a coloured cell (not the title above the cells)
            on_image = artist.axes is not None and bool(artist.axes.images) and artist is not artist.axes.title
            return {"kind": "text", "colour": [_hex(colour), _hex(colour) if on_image else dark_variant(colour)],
                    "on_image": on_image,
                    "size": artist.get_fontsize() * px, "ha": artist.get_horizontalalignment(),
                    "va": artist.get_verticalalignment(), "weight": str(artist.get_fontweight()),
                    "caption": artist.axes is None or artist is artist.axes.title}
        if isinstance(artist, AxesImage):
            return {"kind": "cells", "colour": [None, None]}
        raise TypeError(f"an explorer's moving artist must be a line, a text or an image, not {type(artist).__name__}")

    def _item(self, artist, style: dict, pool: _Pool, layout: Any, seen: dict):
        """What the browser draws of ``artist`` in this frame. ``seen`` keeps what this payload
        already placed (the same data under the same layout is placed once)."""
        from matplotlib import cbook

        if not artist.get_visible():
            return None
        kind = style["kind"]
        if kind == "line":
            x = np.asarray(artist.get_xdata(), dtype=np.float64)
            y = np.asarray(artist.get_ydata(), dtype=np.float64)
            key = (id(artist), layout, x.tobytes(), y.tobytes())
            if key in seen:
                return seen[key]
            if x.size == 1 and y.size > 1:
                x = np.repeat(x, y.size)
            if y.size == 1 and x.size > 1:
                y = np.repeat(y, x.size)
            drawstyle = artist.get_drawstyle()
            if drawstyle in cbook.STEP_LOOKUP_MAP and drawstyle != "default" and x.size:
                x, y = cbook.STEP_LOOKUP_MAP[drawstyle](x, y)
            with np.errstate(all="ignore"):
                points = artist.get_transform().transform(np.column_stack([x, y])) if x.size else np.zeros((0, 2))
            seen[key] = {"p": pool.add(self._css(points))}
            return seen[key]
        if kind == "text":
            text = artist.get_text()
            if not text:
                return None
            position = artist.get_unitless_position()
            key = (id(artist), layout, tuple(position))
            if key not in seen:
                anchor = self._css(artist.get_transform().transform([position]))[0]
                seen[key] = (round(float(anchor[0]), 2), round(float(anchor[1]), 2))
            item = {"t": text, "x": seen[key][0], "y": seen[key][1]}
            colour = _hex(artist.get_color())
            if colour != style["colour"][0]:
                # a label on a coloured cell keeps its colour in both themes
                item["c"] = [colour, colour if style["on_image"] else dark_variant(colour)]
            return item
        # cells of an image, each with its colour
        values = artist.get_array()
        rgba = artist.to_rgba(values)
        rows, columns = values.shape[:2]
        left, right, bottom, top = artist.get_extent()
        dx, dy = (right - left) / columns, (top - bottom) / rows
        transform = artist.axes.transData
        cells = []
        for i in range(rows):
            for j in range(columns):
                corners = transform.transform([[left + j * dx, top - i * dy], [left + (j + 1) * dx, top - (i + 1) * dy]])
                (x0, y0), (x1, y1) = self._css(corners)
                cells.append([round(min(x0, x1), 2), round(min(y0, y1), 2), round(max(x0, x1), 2),
                              round(max(y0, y1), 2), _hex(rgba[i, j])])
        return {"cells": cells}

    # -- images ------------------------------------------------------------------------------------
    def _background(self, explorer) -> bytes:
        explorer.figure.canvas.draw()  # the moving artists and the legends are animated: left out
        return _png(explorer.figure)

    def _overlay(self, explorer) -> bytes:
        canvas = explorer.figure.canvas
        canvas.draw()
        renderer = canvas.get_renderer()
        renderer.clear()
        for ax in explorer.figure.axes:
            if ax.get_legend():
                explorer.figure.draw_artist(ax.get_legend())
        for legend in explorer.figure.legends:
            explorer.figure.draw_artist(legend)
        return _png(explorer.figure)

    def static_png(self, params: dict) -> bytes:
        """The figure at ``params``, everything drawn, on white: what a static view shows."""
        explorer = self.explorer("light")
        explorer.update(**params)
        canvas = explorer.figure.canvas
        canvas.draw()
        for artist in explorer.dynamic + self.legends:
            explorer.figure.draw_artist(artist)
        return _png(explorer.figure, background="white")

    # -- the frames ---------------------------------------------------------------------------------
    def payload(self, kernel_params: dict) -> dict:
        """Every frame for these values of the kernel controls, and the images they draw on."""
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # many small computations: one thread is faster, and leaves the cores free
        try:
            return self._payload(kernel_params)
        finally:
            torch.set_num_threads(threads)

    def _payload(self, kernel_params: dict) -> dict:
        light, dark = self.explorer("light"), self.explorer("dark")
        pool = _Pool()
        backgrounds: dict = {}
        images: list = []
        frames = []
        seen: dict = {}
        for combo in itertools.product(*[c.options for c in self.fast]):
            params = dict(kernel_params, **{c.name: value for c, (_, value) in zip(self.fast, combo)})
            light.update(**params)
            key = light._layout_key()
            if key not in backgrounds:
                dark.update(**params)
                backgrounds[key] = len(images)
                images.append([self._background(light), self._background(dark)])
            frames.append({"bg": backgrounds[key],
                           "a": [self._item(a, s, pool, key, seen) for a, s in zip(light.dynamic, self.spec_artists)]})
        data, offsets = pool.pack()
        key = "|".join(f"{c.name}={kernel_params[c.name]}" for c in self.controls if c.kernel)
        return {"frames": frames, "pool": data, "offsets": offsets, "backgrounds": images,
                "overlays": [self._overlay(light), self._overlay(dark)], "key": key}

    def spec(self, title: str) -> dict:
        return {"width": self.width, "height": self.height, "scale": SCALE, "title": title,
                "controls": [c.describe() for c in self.controls], "artists": self.spec_artists}


def _load(name: str) -> str:
    return (HERE / name).read_text()


def _widget_class():
    import anywidget
    import traitlets

    class ExplorerWidget(anywidget.AnyWidget):
        """An explorer in the browser: see the module's docstring. ``params`` are the values
        the controls show; ``update(**params)`` moves them from Python; ``explorer`` is the
        matplotlib explorer behind the frames."""

        _esm = _load("client.js")
        _css = _load("client.css")
        spec = traitlets.Dict().tag(sync=True)
        index = traitlets.Dict().tag(sync=True)
        payload = traitlets.Dict().tag(sync=True)
        fallback = traitlets.Bytes().tag(sync=True)

        def __init__(self, make: Callable[..., Any], controls: list[Control], params: dict, title: str,
                     prefetch: bool = False):
            index = indices(controls, params)
            self._controls = controls
            self._make = make
            self._frames = Frames(make, controls, params)
            self._cache: dict[str, dict] = {}
            self._lock = threading.Lock()
            self._prefetch = prefetch
            self._prefetching = None
            self.title = title
            fallback = self._frames.static_png(params)
            super().__init__(spec=self._frames.spec(title), index=index, fallback=fallback)
            self.on_msg(self._message)
            self.observe(self._on_index, names="index")

        # -- what Python sees -------------------------------------------------------------------
        @property
        def params(self) -> dict:
            return values(self._controls, self.index)

        @property
        def explorer(self):
            explorer = self._frames.explorer("light")
            explorer.update(**self.params)
            return explorer

        def update(self, **params) -> None:
            self.index = moved(self._controls, self.index, params)

        # -- the kernel's side of the view ------------------------------------------------------
        def _kernel_params(self) -> dict:
            params = self.params
            return {c.name: params[c.name] for c in self._controls if c.kernel}

        def _key(self, kernel_params: dict) -> str:
            return "|".join(f"{name}={value}" for name, value in kernel_params.items())

        def payload_for(self, kernel_params: dict) -> dict:
            key = self._key(kernel_params)
            with self._lock:
                cached = self._cache.get(key)
            if cached is None:
                cached = self._frames.payload(kernel_params)
                with self._lock:
                    self._cache[key] = cached
            return cached

        def _publish(self) -> None:
            self.payload = self.payload_for(self._kernel_params())
            if self._prefetch and self._prefetching is None:
                self._prefetching = threading.Thread(target=self._prefetch_all, daemon=True,
                                                     name="explorer-prefetch")
                self._prefetching.start()

        def _prefetch_all(self) -> None:
            """Every other choice of the kernel controls, computed ahead, in a thread with its own
            figures: a later choice is then only a message away. It stops when Python exits."""
            kernel = [c for c in self._controls if c.kernel]
            frames = Frames(self._make, self._controls, self.params)
            now = self._kernel_params()
            # nearest first: the choices one control away from the student's (the last control's
            # first, the model before the task), then the rest
            combos = sorted(itertools.product(*[c.options for c in kernel]), key=lambda combo: (
                sum(value != now[c.name] for c, (_, value) in zip(kernel, combo)),
                [value != now[c.name] for c, (_, value) in zip(kernel, combo)]))
            for combo in combos:
                if _EXITING.is_set():
                    return
                params = {c.name: value for c, (_, value) in zip(kernel, combo)}
                key = self._key(params)
                with self._lock:
                    if key in self._cache:
                        continue
                payload = frames.payload(params)
                with self._lock:
                    self._cache.setdefault(key, payload)

        def _message(self, _widget, content, _buffers) -> None:
            if isinstance(content, dict) and content.get("event") == "view" and not self.payload:
                self._publish()

        def _on_index(self, change) -> None:
            kernel = [c.name for c in self._controls if c.kernel]
            old, new = change["old"] or {}, change["new"] or {}
            if self.payload and any(old.get(name) != new.get(name) for name in kernel):
                self._publish()

        # -- static views -----------------------------------------------------------------------
        def _repr_mimebundle_(self, **kwargs):
            bundle = super()._repr_mimebundle_(**kwargs)
            data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
            data = dict(data or {})
            metadata = dict(metadata or {})
            data["image/png"] = base64.b64encode(self.fallback).decode("ascii")
            data["text/plain"] = f"{self.title} (an explorer: run the notebook to move its controls)"
            metadata["image/png"] = {"width": self._frames.width, "height": self._frames.height}
            return data, metadata

        def _ipython_display_(self, **kwargs):
            # ipywidgets 7 (Google Colab) displays widgets with this method, ahead of the mimebundle
            from IPython.display import display

            data, metadata = self._repr_mimebundle_()
            display(data, metadata=metadata, raw=True)
            if hasattr(self, "_handle_displayed"):
                self._handle_displayed(**kwargs)

    return ExplorerWidget


_CLASS = None
_EXITING = threading.Event()


@atexit.register
def _stop_prefetching() -> None:
    """At exit, let the threads that compute ahead finish what they are doing and stop: a
    thread still inside torch when the interpreter ends aborts the process."""
    _EXITING.set()
    for thread in threading.enumerate():
        if thread.name == "explorer-prefetch":
            thread.join(timeout=30)


def ExplorerWidget(*args, **kwargs):  # noqa: N802 - a class, built on first use (anywidget is imported then)
    global _CLASS
    if _CLASS is None:
        _CLASS = _widget_class()
    return _CLASS(*args, **kwargs)
