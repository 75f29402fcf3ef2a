"""The run machinery every command shares, below the commands and never importing them:

- resolve.py    a run's settings, resolved and checked before anything is written
- folders.py    run folders: names, refusal to clobber, the completion marker (EVAL.json)
- lifecycle.py  create, train, evaluate, save, finish or resume a run folder
- reference.py  the retrained reference (retrain without the forget set), cached per forget set
- processes.py  one run over several processes (`accelerate launch`)
- console.py    what a finished run prints
"""
