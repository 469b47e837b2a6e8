"""Preprocessors that nbgrader loads through the course's nbgrader_config.py."""

from __future__ import annotations

import re

from nbgrader.preprocessors import NbGraderPreprocessor
from nbgrader.utils import is_grade

BEGIN, END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
_HIDDEN = re.compile(rf"[ \t]*{re.escape(BEGIN)}.*?{re.escape(END)}[ \t]*\n?", re.S)


class HideHiddenTests(NbGraderPreprocessor):
    """For feedback: remove hidden tests from the test cells, and the tracebacks
    that would quote them.

    nbgrader's generate_feedback renders the autograded notebook, whose test
    cells hold the hidden tests again (nbgrader issues 917 and 1363). This
    removes every region between the hidden-test markers from a graded cell's
    source, and keeps of each error output only its type and message (the
    grader's report says what failed, in words), never its traceback, which
    quotes the failing line of code.
    """

    def preprocess_cell(self, cell, resources, index):
        if not is_grade(cell):
            return cell, resources
        if BEGIN in cell.source:
            cell.source = _HIDDEN.sub("", cell.source).rstrip() + "\n# (and hidden tests, run by the autograder)"
        if cell.cell_type == "code":
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"]
        return cell, resources
