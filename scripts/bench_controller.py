#!/usr/bin/env python3
"""`erldeploy` as a whole process, counting the bytes it hands to its sockets (what goes
out of the controller), written to $BENCH_BYTES_FILE at exit. Used by bench_scale.py."""

import asyncio.selector_events as _se
import atexit
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

_sent = [0]
_write = _se._SelectorSocketTransport.write


def _counting_write(self, data):  # every frame, handshake and chunk goes through here
    _sent[0] += len(data)
    return _write(self, data)


_se._SelectorSocketTransport.write = _counting_write
atexit.register(lambda: Path(os.environ["BENCH_BYTES_FILE"]).write_text(str(_sent[0])))

from pyrlang_deploy.cli.main import main  # noqa: E402

main()
