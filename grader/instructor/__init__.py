"""The instructor's side: everything that runs student notebooks or imports nbgrader."""
