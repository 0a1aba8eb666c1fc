"""`make run` (scripts/stack.py's main) over three stand-in processes that ignore SIGINT and SIGTERM.

Run as a program by tests/scripts/test_stack.py: only SIGKILL of their process groups
stops them, so an interrupted stop shows up as survivors.
"""

from __future__ import annotations

import sys
import time

import scripts.stack as stack_module

STUBBORN = (
    "import signal, time; "
    "signal.signal(signal.SIGINT, signal.SIG_IGN); signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(600)"
)


def _stand_in(name: str):  # type: ignore[no-untyped-def]
    def start(self: stack_module.Stack) -> None:
        log = self.logs / f"{name}.log"
        self._spawn(name, [sys.executable, "-c", STUBBORN])
        deadline = time.monotonic() + 20
        # Ready only once it ignores the signals: one that arrives earlier would simply kill it.
        while "ready" not in (log.read_text() if log.exists() else ""):
            if time.monotonic() > deadline:
                raise stack_module.StackError(f"the {name} stand-in did not start; see {log}")
            time.sleep(0.05)

    return start


if __name__ == "__main__":
    # Every process the stack starts (start_redis, start_actions, start_rasa, ...).
    for _attribute in [a for a in vars(stack_module.Stack) if a.startswith("start_")]:
        setattr(stack_module.Stack, _attribute, _stand_in(_attribute[len("start_"):]))
    stack_module.main()
