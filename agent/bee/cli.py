"""bee's command line: `bee audit`, `bee check`, `bee spec`, `bee report`, `bee parse`."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any, NoReturn

from bee import __version__, stops

# Modules that only some commands need are imported where they are used: `bee --version`
# (and every start on the image) should cost little more than the interpreter itself.

DEFAULT_OUTPUT = "/var/log/bee-audit.json"


class UsageError(Exception):
    """A mistake on the command line or in its arguments: one line, exit 2."""


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value < 24 * 3600:
        raise argparse.ArgumentTypeError(f"must be between 0 and 86400 seconds: {text!r}")
    return value


def _seconds_or_off(text: str) -> float:
    return 0.0 if text.strip() in ("0", "0.0", "off") else _positive_seconds(text)


class _Version(argparse.Action):
    """argparse's own version action builds a help formatter (and imports shutil) to print one
    line; this prints it directly."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        sys.stdout.write(f"bee {__version__}\n")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bee", description="Audit this machine's hardware into one JSON document."
    )
    parser.add_argument("--version", action=_Version, help="print bee's version and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="also log quiet notes")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    audit = commands.add_parser("audit", help="run every collector and write the document")
    audit.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)
    audit.add_argument(
        "--output",
        "-o",
        default=DEFAULT_OUTPUT,
        metavar="PATH",
        help=f"where to write the JSON document, '-' for stdout (default {DEFAULT_OUTPUT})",
    )
    audit.add_argument(
        "--deadline",
        type=_positive_seconds,
        default=None,
        metavar="SECONDS",
        help="stop waiting for tools after this long and write what there is (default 120)",
    )
    audit.add_argument("--no-qr", action="store_true", help="print the summary without QR code")
    audit.add_argument(
        "--lldp",
        type=_seconds_or_off,
        default=None,
        metavar="SECONDS",
        help="listen for LLDP on every up Ethernet port this long, all at once; 0 turns it off"
        " (default 31: switches send every 30 s)",
    )
    source = audit.add_mutually_exclusive_group()
    source.add_argument(
        "--capture",
        metavar="DIR",
        help="also save every raw command output and file read into DIR (for --replay)",
    )
    source.add_argument(
        "--replay",
        metavar="DIR",
        help="run no tools: rebuild the document from a directory made by --capture",
    )
    audit.add_argument(
        "--spec",
        metavar="SPEC",
        help="judge the machine against this spec (file or http URL): verdict in the document "
        "and on the console's first line",
    )

    check = commands.add_parser("check", help="judge an audit against a spec: ACCEPT or REJECT")
    check.add_argument("spec_file", metavar="SPEC", help="the spec (TOML file or http URL)")
    check.add_argument(
        "audit_file",
        metavar="AUDIT",
        nargs="?",
        default=DEFAULT_OUTPUT,
        help=f"the audit document, '-' for stdin (default {DEFAULT_OUTPUT})",
    )
    check.add_argument("--json", action="store_true", help="the verdict as JSON")
    check.add_argument(
        "--allow-unknown",
        action="append",
        default=[],
        metavar="ID",
        help="accept this check when it is UNKNOWN (repeatable)",
    )

    spec = commands.add_parser("spec", help="write a spec from known-good machines' audits")
    spec.add_argument("audits", metavar="AUDIT", nargs="+", help="audit documents ('-': stdin)")
    spec.add_argument("--output", "-o", default="-", metavar="FILE", help="default: stdout")

    parse = commands.add_parser("parse", help="parse one captured tool output and print JSON")
    # The names come from the collector registry, which imports every tool module: too dear
    # for each start of bee, so an unknown name is answered with the list instead.
    parse.add_argument("tool", metavar="TOOL", help="what printed FILE, e.g. lspci or dmidecode")
    parse.add_argument("file", metavar="FILE", help="the captured output ('-' for stdin)")

    report = commands.add_parser(
        "report", help="one HTML report over many nodes' audits: what differs from the majority"
    )
    report.add_argument("paths", nargs="+", metavar="DIR|FILE", help="audit documents, or folders")
    report.add_argument(
        "-o", "--output", default="report.html", metavar="FILE", help="the HTML file ('-': stdout)"
    )
    report.add_argument("--csv", metavar="FILE", help="also write a row per node as CSV")
    report.add_argument("--spec", metavar="SPEC", help="judge every node against this spec")

    upload = commands.add_parser("upload", help="PUT the audit document to an HTTP server")
    upload.add_argument(
        "url",
        nargs="?",
        metavar="URL",
        help="folder URL, URL with {name}, or a presigned URL "
        "(default: bee.upload= on the kernel command line, else /etc/bee/upload-url)",
    )
    upload.add_argument("--file", default=DEFAULT_OUTPUT, metavar="PATH", help="the document")
    upload.add_argument(
        "--time-limit",
        type=_positive_seconds,
        default=60.0,
        metavar="SECONDS",
        help="give up after this long, retries included (default 60)",
    )
    upload.add_argument("--status", metavar="FILE", help="also write the outcome here (motd)")
    flavour = commands.add_parser(
        "nvidia-flavour",
        help="print which shipped NVIDIA module flavour this machine's GPUs need (bee-nvidia)",
    )
    flavour.add_argument("--replay", metavar="DIR", help="answer from a --capture directory")
    return parser


def cmd_parse(args: argparse.Namespace) -> int:
    from bee.registry import parsers
    from bee.serialize import dumps

    parser = parsers().get(args.tool)
    if parser is None:
        names = ", ".join(sorted(parsers()))
        raise UsageError(f"unknown tool {args.tool!r}; choose one of: {names}")
    try:
        if args.file == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(args.file, "rb") as handle:
                data = handle.read()
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    errors: list[str] = []
    try:
        section = parser(data.decode("utf-8", errors="replace"))
        errors.extend(getattr(section, "errors", None) or [])
    except Exception as exc:  # parsers never raise; if one does, it is a bug, not a crash
        section = None
        errors.append(f"parser raised {type(exc).__name__}: {exc}")
    document = {"tool": args.tool, "file": args.file, "section": section, "errors": errors}
    sys.stdout.write(dumps(document))
    return 0


def cmd_spec(args: argparse.Namespace) -> int:
    from bee.spec import command

    try:
        if args.command == "check":
            return command.check(args.spec_file, args.audit_file, args.allow_unknown, args.json)
        return command.spec(args.audits, args.output)
    except command.InputError as exc:
        raise UsageError(str(exc)) from None


def cmd_nvidia_flavour(args: argparse.Namespace) -> int:
    """stdout: `open`, `proprietary` or `none`; stderr: why. Exit 0 when there is one to load."""
    from pathlib import Path

    from bee.capture import CaptureError, ReplayRunner
    from bee.probe import Probe
    from bee.runner import SystemRunner
    from bee.tools.supported_gpus import decide

    try:
        runner: Any = ReplayRunner(Path(args.replay)) if args.replay else SystemRunner()
    except CaptureError as exc:
        raise UsageError(str(exc)) from None
    probe = Probe(runner, "nvidia-flavour")
    choice, _table, _flavours, _version = decide(probe)
    print(choice.flavour or "none")
    print(f"bee: {choice.reason}", file=sys.stderr)
    return 0 if choice.flavour else 1


def cmd_audit(args: argparse.Namespace) -> int:
    import hashlib
    from pathlib import Path

    from bee.audit import DEFAULT_DEADLINE_S, run_audit
    from bee.capture import CaptureError, ReplayRunner
    from bee.output import OutputError, write_document
    from bee.runner import SystemRunner
    from bee.serialize import dumps_ready
    from bee.summary import qr_code, qr_payload, summary_lines

    deadline = args.deadline or DEFAULT_DEADLINE_S
    pending = None
    if args.spec is not None:
        from bee.spec import command

        pending = command.start(args.spec, deadline)  # a URL is fetched while the audit runs
    options = {} if args.lldp is None else {"lldp_seconds": args.lldp}
    try:
        if args.replay is not None:
            runner: Any = ReplayRunner(Path(args.replay))
            document = run_audit(runner, deadline_s=deadline, mode="replay", options=options)
        else:
            capture = Path(args.capture) if args.capture else None
            document = run_audit(
                SystemRunner(), deadline_s=deadline, capture_dir=capture, options=options
            )
    except CaptureError as exc:
        raise UsageError(str(exc)) from None

    if pending is not None:
        document["verdict"] = command.verdict_for(pending, document)
    text = dumps_ready(document)
    to_stdout = args.output == "-"
    status = 0
    if to_stdout:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        try:
            write_document(Path(args.output), text.encode("utf-8"))
        except OutputError as exc:
            print(f"bee: {exc}", file=sys.stderr)
            status = 1
    # With the document on stdout, the human summary goes to stderr.
    human = sys.stderr if to_stdout else sys.stdout
    lines = summary_lines(document)
    if status == 0 and not to_stdout:
        lines.append(f"Document: {args.output}")
    sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if pending is not None:
        lines.append(f"Document sha256: {sha256}")
    summary = "\n".join(lines)
    try:
        print(summary, file=human)
        if not args.no_qr:
            payload = qr_payload(document, sha256) if pending is not None else summary
            qr = qr_code(payload, SystemRunner())
            if qr:
                print(qr, file=human, end="")
        human.flush()
    except BrokenPipeError:
        # `bee audit -o FILE | true`: nobody reads the summary, but the document is written.
        _quiet(human)
    return status


def cmd_report(args: argparse.Namespace) -> int:
    from bee.report.command import run
    from bee.report.verdict import SpecError

    try:
        return run(args.paths, output=args.output, csv_path=args.csv, spec=args.spec)
    except SpecError as exc:
        raise UsageError(str(exc)) from None


def cmd_upload(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bee.upload import UploadError, run

    status = Path(args.status) if args.status else None
    try:
        return run(args.url, Path(args.file), args.time_limit, status)
    except UploadError as exc:
        raise UsageError(str(exc)) from None


def exit_process(status: int) -> NoReturn:
    """Flush and leave at once. The document is written and every tool killed by now; a
    collector thread still stuck past the deadline (in a tool's pipe, or holding a lock a
    worker waits for) must not keep bee alive, as interpreter shutdown would by joining it."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


def _say(message: str) -> None:
    """One line on stderr, which may be gone (a closed terminal after SIGHUP)."""
    try:
        print(f"bee: {message}", file=sys.stderr)
    except (OSError, ValueError):
        pass


def main(argv: list[str] | None = None) -> int:
    stops.install()
    try:
        args = build_parser().parse_args(argv)
        import logging

        logging.basicConfig(
            level=logging.INFO if args.verbose else logging.WARNING,
            format="bee: %(message)s",
            stream=sys.stderr,
        )
        if args.command == "parse":
            return cmd_parse(args)
        if args.command == "report":
            return cmd_report(args)
        if args.command == "upload":
            return cmd_upload(args)
        if args.command in ("check", "spec"):
            return cmd_spec(args)
        if args.command == "nvidia-flavour":
            return cmd_nvidia_flavour(args)
        return cmd_audit(args)
    except UsageError as exc:
        _say(str(exc))
        return 2
    except KeyboardInterrupt:  # raised by Python's own handler before ours was installed
        _say("interrupted")
        return 128 + signal.SIGINT
    except stops.Stopped as exc:
        _say(f"stopped by {signal.Signals(exc.signum).name}")
        return 128 + exc.signum
    except BrokenPipeError:
        # The reader of the document went away (bee audit -o - | head): the document was not
        # delivered, so exit 1, quietly, without a traceback.
        _quiet(sys.stdout)
        return 1


def _quiet(stream: Any) -> None:
    """Point a closed pipe's stream at /dev/null so the final flush cannot fail on it again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, stream.fileno())
    os.close(devnull)
