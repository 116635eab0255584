"""Entry point of the `qenex` command.

Every user mistake ends as one line on stderr and a non-zero exit code, never a traceback:
usage errors exit 2, domain rejections (QenexError) exit 1, configuration errors exit 2.
Sub-command groups live in their own modules and are registered in `_register`.
"""

from __future__ import annotations

import sys

import typer

from qenex import __version__
from qenex.config import ConfigError
from qenex.errors import QenexError

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="qenex",
    help="QENEX financial operating system.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """QENEX financial operating system."""


@app.command("version")
def version_cmd() -> None:
    """Print the QENEX version."""
    typer.echo(__version__)


def _register() -> None:
    """Attach every sub-command group. Each module exposes `register(app)`."""
    from qenex.cli import commands_registry

    for register in commands_registry.all_registrars():
        register(app)


def _one_line(exc: Exception) -> str:
    fmt = getattr(exc, "format_message", None)
    text = fmt() if callable(fmt) else str(exc)
    return " ".join(str(text).split())


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"qenex: {message}\n")
    return code


def main(argv: list[str] | None = None) -> int:
    _register()
    try:
        result = app(args=argv, prog_name="qenex", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        return _fail("aborted", EXIT_INTERRUPTED)
    except typer.TyperException as exc:  # click's UsageError, BadParameter, ... (vendored by Typer)
        return _fail(f"usage error: {_one_line(exc)}", EXIT_USAGE)
    except ConfigError as exc:
        return _fail(f"configuration error: {exc}", EXIT_USAGE)
    except QenexError as exc:
        return _fail(f"error: {exc.code}: {exc.message}", EXIT_REJECTED)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    return int(result) if isinstance(result, int) else EXIT_OK


def run() -> None:
    sys.exit(main())
