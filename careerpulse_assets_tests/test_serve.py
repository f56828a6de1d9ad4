"""The supervisor of `make ui` / `make serve`: its processes die with it, however it dies, and a
stop ends what they left behind. Stand-in processes here; test_deployment.py kills the real
`make ui` as a group."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from .servers import wait_for

# Processes started, killed and watched: what is tested is how processes die together.
pytestmark = pytest.mark.slow

# A supervisor of two services; the second starts a grandchild (as `dagster dev` starts its
# webserver) and prints its pid. The supervisor prints its children's pids, then waits.
SUPERVISE = textwrap.dedent("""
    import os, sys, time
    from careerpulse_assets.ops.serve import Service, Supervisor

    sleep = [sys.executable, "-c", "import time; time.sleep(600)"]
    parent = [sys.executable, "-c", "import subprocess, sys, time; child = subprocess.Popen("
              "[sys.executable, '-c', 'import time; time.sleep(600)']); print(child.pid, "
              "flush=True); time.sleep(600)"]
    supervisor = Supervisor([Service("a", sleep, None), Service("b", parent, None)],
                            dict(os.environ))
    supervisor.start()
    print(*(p.pid for p in supervisor.running.values()), flush=True)
    if sys.argv[1] == "stop":
        time.sleep(3)
        for process in supervisor.running.values():
            if process.args is parent:
                os.kill(process.pid, 9)  # the parent dies first, leaving its child to us
        supervisor.stop()
        print("stopped", flush=True)
    time.sleep(600)
""")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def ignoring_sigterm() -> None:
    """As a supervisor started by a process that ignores and blocks SIGTERM inherits it (the
    suite's own workers did, after some tests): both survive exec into its services."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})


def start(how: str, preexec_fn=None):
    supervisor = subprocess.Popen([sys.executable, "-c", SUPERVISE, how], stdout=subprocess.PIPE,
                                  text=True, start_new_session=True, preexec_fn=preexec_fn)
    children = [int(pid) for pid in supervisor.stdout.readline().split()]
    grandchild = int(supervisor.stdout.readline())
    return supervisor, children, grandchild


@pytest.mark.parametrize("inherited", [None, ignoring_sigterm], ids=["plain", "sigterm-ignored"])
def test_the_services_get_sigterm_when_the_supervisor_alone_is_killed(inherited):
    supervisor, children, grandchild = start("wait", inherited)
    try:
        assert all(alive(pid) for pid in children + [grandchild])
        supervisor.send_signal(signal.SIGKILL)  # the supervisor only, as the OOM killer does
        supervisor.wait()
        wait_for(lambda: not any(alive(pid) for pid in children), 10,
                 "the services to stop on their parent-death signal", every=0.1)
    finally:
        os.killpg(supervisor.pid, signal.SIGKILL)  # the stand-in grandchild does not forward


def test_a_stop_ends_what_a_killed_service_left_behind():
    supervisor, children, grandchild = start("stop")
    try:
        assert supervisor.stdout.readline().strip() == "stopped"
        assert not any(alive(pid) for pid in children + [grandchild])
    finally:
        os.killpg(supervisor.pid, signal.SIGKILL)
