"""Explorers that redraw in the browser.

An explorer (``grader.explore.Explorer``) is a matplotlib figure whose moving
artists follow a few parameters. :class:`ExplorerWidget` turns one into a widget
(anywidget, which JupyterLab, Jupyter Notebook, VS Code and Google Colab load
without an extension of their own): the kernel draws every combination of the
controls' values once, with the explorer's own ``update``, and sends the result
to the browser, where moving a control only picks another frame and draws it on
a canvas. Static views (GitHub, nbviewer, exported HTML) show the figure at its
initial state instead.
"""

from .controls import Control
from .undrawn import UndrawnExplorer
from .widget import ExplorerWidget, Frames

__all__ = ["Control", "ExplorerWidget", "Frames", "UndrawnExplorer"]
