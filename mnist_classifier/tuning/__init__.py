"""`make tune`: an Optuna search whose every trial is a DVC experiment of this pipeline.

Read top to bottom: `command` (the command line, and why the search is built this way),
`search_space` (tune.yaml, checked before anything runs), `study` (Optuna's storage and study,
and settling what a killed search left), `search` (the scheduler: how many trials run, when a
result is told), `trials` (one trial as a `dvc exp run --temp` process, and its `Outcome`),
`sampler` (TPE with floats dvc.lock keeps), `experiments` (reading a finished experiment back
from git and DVC) and `report` (the table, the keep command and the figures).

Tool-side only: no stage imports this package, so editing it reruns nothing.
"""
