"""nbgrader's configuration for the course.

The masters live in source/<assignment>/<assignment>.ipynb beside this file.
The commands of `python -m grader` run nbgrader with this configuration in a
separate course workspace, so that gradebooks, submissions and generated files
never land in the repository.
"""

c = get_config()  # noqa: F821 - provided by traitlets when nbgrader loads this file

c.CourseDirectory.course_id = "bce-course"

# The stub that replaces a solution in the student copy.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Seconds a cell may run while nbgrader executes a notebook (validate, autograde).
c.Execute.timeout = 120

# A grade cell that writes to stderr gets no points; a warning printed by torch or
# Python must not cost a student points. Drop stderr outputs that are warnings.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"(?m)^.*\b\w*Warning: "

# A submission whose test cell was deleted is graded with the original test cell.
c.OverwriteCells.add_missing_cells = True

# Feedback never shows a hidden test (plain nbgrader's does: its issues 917 and 1363),
# and shows each explorer as its figure, which needs neither a kernel nor the network.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
    "grader.instructor.plugins.HideHiddenTests",
    "grader.instructor.plugins.StaticExplorers",
]
# The feedback is one file a student opens from disk, offline: formulas rendered as MathML
# when it is written (nbgrader's template would load MathJax from a CDN), no script, no remote
# image, long lines wrapped (grader/instructor/feedback_html.py).
c.GenerateFeedback.exporter_class = "grader.instructor.feedback_html.FeedbackExporter"
