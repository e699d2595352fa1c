"""Emulate, on Linux, what Windows and macOS do differently for this project's processes.

Python imports ``sitecustomize`` at every start-up when its folder is on ``PYTHONPATH``; the
platform-semantics tests put this folder there and set ``DEEPLABSTREAM_EMULATE_PLATFORM`` to
``windows`` or ``macos``, so that the command under test *and every process it spawns* (they
inherit the environment) follow the emulated platform's rules. Unset, nothing changes.

What is emulated (each rule as documented by CPython, the OS or psutil):

============================  =========  =======  ==============================================
rule                          windows    macos    how
============================  =========  =======  ==============================================
spawn only                    yes        default  ``fork`` and ``forkserver`` contexts refused
``select`` on sockets only    yes        -        our code's ``select.select`` on a pipe raises
                                                  WinError 10038 (libraries keep their own
                                                  platform code paths)
``os.kill(pid, 0)`` no probe  yes        -        our code's: raises WinError 87 (CTRL_C_EVENT)
``os.kill`` other signals     hard kill  -        our code's: SIGKILL (TerminateProcess)
``Process.terminate()``       hard kill  -        SIGKILL (TerminateProcess)
``os.getppid()`` fixed        yes        -        keeps answering the first parent's pid
no ``os.nice``                yes        -        removed
no ``os.getloadavg``          yes        -        removed (psutil's estimate remains)
no ``os.sched_*affinity``     yes        yes      removed (and ``sched_setscheduler``)
no psutil ``cpu_affinity``    -          yes      removed from ``psutil.Process``
no ``prctl``                  yes        yes      libc cannot be loaded (windows) / has no prctl
no ``SIGRTMIN``               yes        yes      removed from ``signal``
no ``pthread_sigmask``        yes        -        removed from ``signal``
no ``SIGHUP``                 yes        -        removed from ``signal``
no POSIX pipes for doorbells  yes        -        ``transport.channel`` sees no ``fcntl``
no ``/dev/shm`` folder        yes        yes      ``transport.ring`` looks in a folder that is
                                                  not there
no ``/proc``                  yes        yes      ``core.machine``'s cpuinfo and the window's
                                                  schedstat are files that are not there
31-byte shared-memory names   -          yes      a name longer than 30 characters (31 with
                                                  Python's leading "/") is refused, ENAMETOOLONG
============================  =========  =======  ==============================================

Not emulated (no faithful way on Linux): Windows' priority classes in psutil, its timer
resolution, named pipes' own buffering, console Ctrl-C groups, file locking semantics.
"""

from __future__ import annotations

import os

PLATFORM = os.environ.get("DEEPLABSTREAM_EMULATE_PLATFORM", "").strip().lower()

if PLATFORM in ("windows", "macos"):
    from platform_rules import apply  # the rules live beside this file

    apply(PLATFORM)
