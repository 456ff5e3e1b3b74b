"""The MNIST classifier's library: everything the DVC stages in `stages/` and the commands
(`predict`, `serve`, `compare`, `report`, `release`, `make tune`, `make keep`) share, one module
per concern; `tuning/` is `make tune`. docs/pipeline.md's layout table says what each holds."""
