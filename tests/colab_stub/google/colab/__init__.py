"""A stand-in for Google Colab's ``google.colab`` package, for the test that runs the
course's notebooks in a Colab-like environment. Colab's kernel imports it at start-up;
the notebooks only ask whether it is there (``"google.colab" in sys.modules``)."""

from . import output  # noqa: F401
