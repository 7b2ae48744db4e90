"""erldeploy: hot upgrades for BEAM clusters over the Erlang distribution protocol.

Heavy modules are imported lazily so that the CLI starts fast.
"""

__version__ = "0.1.0"
