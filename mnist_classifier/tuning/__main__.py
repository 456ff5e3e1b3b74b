"""`python -m mnist_classifier.tuning`: the same as `make tune` and `mnist-tune`."""

from mnist_classifier.tuning.command import cli

cli()
