"""The feedback of a hostile notebook: what a student writes in Markdown or sends to an output
can neither stop anyone's feedback from being written nor run or load anything in a page (the
browser's own parse of it, html5lib's here, holds nothing live), and an honest notebook's
feedback shows what it showed."""

from __future__ import annotations

import pytest

from grader.instructor.feedback_html import MathMLRenderer

FORGED = "# My notes <span data-held-math=\"7\">on the gradient</span>"


def _markdown(source: str) -> str:
    from nbconvert.filters.markdown_mistune import MarkdownWithMath

    return MarkdownWithMath(renderer=MathMLRenderer(escape=False)).render(source)


# --- a placeholder a student writes stays their text ----------------------------------------------

def test_a_forged_placeholder_in_a_heading_renders_as_text():
    page = _markdown(FORGED)
    assert page.startswith('<h1 id="My-notes-on-the-gradient">') and "on the gradient</span>" in page


def test_a_forged_placeholder_beside_a_formula_takes_nothing_of_it():
    """A formula in the same heading is held as placeholder 0: the student's "0" is not it."""
    page = _markdown("## The loss $L$ and <span data-held-math=\"0\">my words</span> "
                     "<span data-held-math=\"1\">more</span>")
    assert page.count("<math ") == 1 and '<annotation encoding="application/x-tex">L</annotation>' in page
    assert "my words</span>" in page and "more</span>" in page
    assert "<mi>L</mi>" not in page.split("my words")[1]  # the formula is where it was, once
