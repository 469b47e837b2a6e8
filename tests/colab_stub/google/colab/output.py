"""Stand-in for ``google.colab.output``."""


def enable_custom_widget_manager() -> None:
    """Colab needs this only for widgets other than ipywidgets' own."""
