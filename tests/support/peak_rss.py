"""Run a module as __main__ and write its peak RSS (VmHWM, bytes) to a file at exit.

    python tests/support/peak_rss.py OUT_FILE -m package.module ARGS...

VmHWM belongs to this process's own address space, which exec starts afresh;
ru_maxrss would also count the test process it was forked from.
"""

import atexit
import runpy
import sys


def _write_peak(path: str) -> None:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                kib = int(line.split()[1])
                with open(path, "w") as out:
                    out.write(str(kib * 1024))
                return


if __name__ == "__main__":
    out_path, flag, module, *args = sys.argv[1:]
    assert flag == "-m", "usage: peak_rss.py OUT -m MODULE ARGS..."
    atexit.register(_write_peak, out_path)
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
