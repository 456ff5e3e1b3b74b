"""What the test modules share, one module per job (fixtures are in tests/conftest.py); no
test module imports another.

`paths` where things are; `data` tiny datasets; `params` the params a test sets; `projects`
project copies to run DVC in; `commands` git, dvc and other programs; `stages` the stages as
DVC runs them; `pictures` pictures as people make them; `servers` real servers on 127.0.0.1.
"""
