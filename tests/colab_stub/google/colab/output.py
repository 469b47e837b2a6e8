"""Stand-in for ``google.colab.output``."""

from . import _widgets

#: How often the custom widget manager was enabled (anywidget does it once per kernel).
enabled = 0


def enable_custom_widget_manager() -> None:
    """Colab needs this only for widgets other than ipywidgets' own; anywidget calls it."""
    global enabled
    enabled += 1
