"""The `ebmkit` command (and `python -m ebmkit`). Signals are set up before anything is imported, so
that Ctrl-C or SIGTERM at any moment ends with "error: interrupted" and exit code 130."""

import os
import signal
import sys

from ebmkit import signals


def run() -> None:
    signals.install()
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file-size limit fails the write (EFBIG), reported as disk full
    try:
        from ebmkit.cli import main
    except KeyboardInterrupt:
        # Out at once: an interrupt inside an extension's start-up (torch runs Python code from C) can leave the
        # interpreter to die by SIGINT (-2) or abort (-6) while finalizing; nothing is written yet
        print("error: interrupted", file=sys.stderr, flush=True)
        os._exit(130)
    main()


if __name__ == "__main__":
    run()
