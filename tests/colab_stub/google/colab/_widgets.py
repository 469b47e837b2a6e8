"""Stand-in for ``google.colab.output._widgets``: where Colab keeps the address of the custom
widget manager it loads (none here: nothing is loaded)."""

_installed_url = None
