"""What the exercises of each notebook are checked against, one module per notebook: the
numbers students predict (:func:`grader._battery.exercises.quantity`) and the functions
they write besides the losses (:func:`grader._battery.exercises.reference`)."""
