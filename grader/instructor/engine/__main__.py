"""``python -m grader.instructor.engine``: grade a job read from stdin (see ``pool.main``)."""

from grader.instructor import skip_iri_grammar

skip_iri_grammar()

from grader.instructor.engine.pool import main  # noqa: E402 - after the line above

main()
