"""Preprocessors that nbgrader loads through the course's nbgrader_config.py."""

from __future__ import annotations

from nbconvert.preprocessors import Preprocessor
from nbgrader.preprocessors import ClearHiddenTests
from nbgrader.utils import is_grade

#: What replaces the hidden tests in a test cell that a student or the feedback sees.
HIDDEN_NOTE = "# (and hidden tests, run by the autograder)"


class HideHiddenTests(ClearHiddenTests):
    """For feedback and for the autograded notebooks: remove hidden tests from the test
    cells, and the tracebacks that would quote them.

    nbgrader's generate_feedback renders the autograded notebook, whose test cells hold
    the hidden tests again (nbgrader issues 917 and 1363). This removes every region
    between the hidden-test delimiters (``c.ClearHiddenTests``'s, as when the assignment
    was generated) from a graded cell's source, and keeps of each error output only its
    type and message (the grader's report says what failed, in words), never its
    traceback, which quotes the failing line of code.
    """

    def split(self, source: str) -> tuple[str, str | None]:
        """``source`` without its hidden tests (nbgrader's own removal), and the hidden tests'
        code, delimiters left out (None when it has none)."""
        from nbformat import NotebookNode

        cell = NotebookNode(source=source)
        if not self._remove_hidden_test_region(cell):
            return source, None
        hidden, inside = [], False
        for line in source.split("\n"):
            if self.begin_test_delimeter in line:
                inside = True
            elif self.end_test_delimeter in line:
                inside = False
            elif inside:
                hidden.append(line)
        return cell.source, "\n".join(hidden)

    def preprocess_cell(self, cell, resources, index):
        if not is_grade(cell):
            return cell, resources
        source, hidden = self.split(cell.source)
        if hidden is not None:
            cell.source = source.rstrip() + "\n" + HIDDEN_NOTE
        if cell.cell_type == "code":
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"]
        return cell, resources


class StaticExplorers(Preprocessor):
    """For feedback: show each explorer as its figure.

    The executor saves the state of every widget in the notebook's metadata, and with it
    nbconvert renders an explorer as a live widget, which needs the course's JavaScript
    from the network and shows nothing offline. Without the state, nbconvert shows the
    figure every explorer also sends (its ``image/png``)."""

    def preprocess(self, nb, resources):
        nb.metadata.pop("widgets", None)
        return nb, resources
