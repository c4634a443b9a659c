"""Prompt complexity: features, the fitted linear model, labels and training. numpy/scikit-learn only, no I/O."""
