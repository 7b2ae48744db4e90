"""`erldeploy relup OLD NEW -o OUT`: the hot upgrade between two releases, generated.

One job per module, pure ones first:
  beam.py        BEAM chunk reader: atoms, exports, imports, attributes, a code digest that
                 ignores debug info and line tables, records from the debug info
  releases.py    OLD/NEW as a tarball or a release root, in systools/relx/mix/Distillery layout
  appup.py       the appup generator (add/delete_module, update supervisor/advanced,
                 load_module, DepMods, inverse down) and which user appup wins
  warnings.py    what a generated upgrade cannot promise
  plan.py        the two releases -> app changes, appups to ship, warnings
  make_relup.py  OTP's systools:make_relup on those inputs (the release's ERTS, erl on
                 PATH, or a cluster node): never a hand-written relup
  local_erl.py   the emulator that runs it here, booted first and fed the inputs on stdin
  package.py     OUT in NEW's own layout, with the appups and releases/VSN/relup
  run.py         the command's order of work, overlapped where it can be
"""
