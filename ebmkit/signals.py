"""Ctrl-C and SIGTERM for the `ebmkit` command: both raise KeyboardInterrupt (a command's own clean-up
runs, then exit 130), and `signalled` remembers that one arrived, so that a failure it caused later (an
import it cut short fails again when retried) is still reported as the interrupt. Imports nothing heavy."""

import signal

installed = False  # the handlers are set: this process is the `ebmkit` command, not a library caller
signalled = False


def _interrupted(signum, frame):
    global signalled
    signalled = True
    raise KeyboardInterrupt


def install() -> None:
    global installed
    installed = True
    signal.signal(signal.SIGINT, _interrupted)
    signal.signal(signal.SIGTERM, _interrupted)
