"""The MNIST classifier's library: everything the DVC stages in `stages/` and the commands
(`predict`, `compare`, `report`) share, one module per concern (see the README's layout)."""
