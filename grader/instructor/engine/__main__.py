"""``python -m grader.instructor.engine``: grade a job read from stdin (see ``pool.main``)."""

from grader.instructor.engine.pool import main

main()
