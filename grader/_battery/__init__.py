"""The battery's internals: private to the grader."""
