"""The `ebmkit` command line. Each command parses, checks its paths (before torch is imported), loads,
calls one library function, writes and prints; a file per command group:

    train.py     train, plot, presets list|show, info
    generate.py  sample, compose
    tasks.py     inpaint, reconstruct, interpolate, novel-view, ood-score
    evaluate.py  eval mmd|fid|guidance-sweep|compose|fid-stats|psnr|poses|auroc
    data.py      data export
    common.py    options, loading, progress, output writers, the report printer

Errors are one line on stderr: exit 2 for bad usage or input, 1 for failures at run time,
130 when interrupted.
"""

import os
import sys

import typer
from typer.exceptions import Abort, Exit, TyperException

from ebmkit import signals
from ebmkit.cli import train, generate, tasks, evaluate, data, convert  # noqa: F401, I001 (they register their commands, in this order)
from ebmkit.cli.common import app, err
from ebmkit.errors import EbmkitError


def _os_error(e: OSError) -> str:
    """One line for a failed read or write, naming a full disk as such."""
    import errno

    where = f" writing {e.filename}" if e.filename else ""
    if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return (f"disk full{where} ({e.strerror}); nothing was committed half-written: free space, then rerun "
                f"(training: ebmkit train --resume RUN_DIR continues from the last checkpoint)")
    return f"{e.strerror or type(e).__name__}: {e.filename or e}"


def _fail(message: str, code: int):
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    sys.exit(code)


def _interrupted():
    """Exit 130. As the `ebmkit` command, without finalizing: the command's own clean-up has run (the interrupt
    unwound through it), and an interrupt inside an extension's import (torch runs Python code from C) can
    leave the interpreter to die by SIGINT or abort while finalizing."""
    err.print("error: interrupted", markup=False)
    if not signals.installed:  # called as a library function: an ordinary exit
        sys.exit(130)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


def main(argv: list[str] | None = None) -> None:
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="ebmkit", standalone_mode=False)
        # Without standalone mode, typer returns the code of an Exit instead of exiting; Ctrl-C is Exit(130).
        if isinstance(code, int) and not isinstance(code, bool) and code:
            raise Exit(code)
    except EbmkitError as e:
        _fail(str(e), e.exit_code)
    except Exit as e:
        if e.exit_code == 130:
            _interrupted()
        sys.exit(e.exit_code)
    except TyperException as e:  # usage errors: unknown option, missing or malformed value
        _fail(f"{e.format_message()} (see --help)", 2)
    except (KeyboardInterrupt, Abort):
        _interrupted()
    except OSError as e:  # the file system refused: a full disk, a read-only folder, a vanished file
        _fail(_os_error(e), 1)
    except Exception as e:  # never a traceback for the user, unless asked
        if signals.signalled:  # e.g. an import the interrupt cut short, failing again later
            _interrupted()
        if os.environ.get("EBMKIT_DEBUG"):
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        _fail(f"internal error: {type(e).__name__}: {first} (EBMKIT_DEBUG=1 shows the traceback)", 1)
