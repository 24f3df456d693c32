"""A sweep's `work` that kills its worker process, for the tests of dead workers (imported by the workers,
so it imports nothing heavy)."""
import os
import tempfile
import time

ALWAYS, ONCE, STUCK = 13, 11, 17  # the seeds that die every time, die on the first try, never end


def marker(driver: int, seed: int) -> str:
    return os.path.join(tempfile.gettempdir(), f"rnnlab-test-killed-{driver}-{seed}")


def killing_work(index, spec, threads, driver):
    """A run in a worker that trains nothing (returns a stub row at once), except that seed ALWAYS
    kills its worker, ONCE does so on its first try, and STUCK waits a minute (its worker is taken
    away meanwhile)."""
    if spec.seed == ALWAYS:
        os._exit(3)
    if spec.seed == ONCE and not os.path.exists(marker(driver, ONCE)):
        open(marker(driver, ONCE), "w").close()
        os._exit(3)
    if spec.seed == STUCK:
        time.sleep(60)
    return index, {"seed": spec.seed, "pid": os.getpid()}  # the engine's part is under test, not training
