"""Entry point: argument parsing and error handling (no tracebacks for user errors)."""

from __future__ import annotations

import argparse
import sys

from ..errors import OnePassError
from .common import report_bug


def build_parser() -> argparse.ArgumentParser:
    from . import eval as eval_cmd
    from . import export, finetune, info, serve, stream, transcribe

    parser = argparse.ArgumentParser(
        prog="onepass", allow_abbrev=False,
        description="Exact cache-aware streaming speech recognition for NVIDIA Nemotron ASR models.")
    parser.add_argument("--version", action="version", version=f"onepass {_version()}")
    parser.add_argument("--debug", action="store_true", help="print the traceback of unexpected errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    transcribe.add_parser(sub)
    info.add_parsers(sub)
    eval_cmd.add_parser(sub)
    serve.add_parser(sub)
    stream.add_parser(sub)
    export.add_parser(sub)
    finetune.add_parser(sub)
    __import__(f"{__package__}.bench", fromlist=["bench"]).add_parser(sub)
    for command in sub.choices.values():  # `onepass transcribe --debug ...` as well as `onepass --debug ...`
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="print the traceback of unexpected errors")
    return parser


def _version() -> str:
    from .. import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except OnePassError as exc:
        print(f"onepass: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("onepass: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: one line, the traceback only with --debug
        report_bug(exc, args.debug)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
