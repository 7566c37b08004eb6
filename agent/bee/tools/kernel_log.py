"""The kernel log: NVIDIA Xid and SXid, machine checks, EDAC and PCIe AER lines.

Command: `dmesg --kernel --decode --time-format iso` (util-linux 2.38; it reads /dev/kmsg
without blocking and stops at its end, and the runner caps what it keeps). `bee parse
kernel-log FILE` reads that and the other layouts people keep kernel logs in:

    kern  :warn  : 2024-11-15T12:02:03,470068+00:00 NVRM: Xid (PCI:0000:19:00): 63, pid=...
    [1084456.074562] NVRM: Xid (PCI:0000:09:00): 79, pid=0, GPU has fallen off the bus.
    [Sat Aug 13 09:31:18 2022] mce: [Hardware Error]: Machine check events logged
    <4>[   12.345678] pcieport 0000:00:01.1: AER: Corrected error received: 0000:00:00.0
    Sep 19 16:18:02 host kernel: [68183.615790] pcieport 0000:00:03.1: AER: Correctable ...
    kernel: NVRM: Xid (PCI:0000:dc:00): 45, pid=1818990, name=python3, Ch 00000001
    6,1234,5678901,-;EDAC MC0: 1 CE memory read error on CPU_SrcID#0_MC#0_Chan#1_DIMM#0 ...

Everything in it counts since this boot only (the ring buffer starts empty): on a freshly
booted live image these lines mostly show what the boot and the audit itself triggered, which
is exactly what a GPU falling off the bus during the audit looks like.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bee.findings import Finding, Severity

# Xids that mean a hardware fault or a GPU that needs a reset (Azure's HPC health checks fail
# on these; NVIDIA's catalog puts them in the reset/RMA buckets): DBE, row remap failures,
# fallen off the bus, NVLink, GSP timeouts, uncontained ECC.
CRITICAL_XIDS = frozenset(
    {48, 56, 57, 58, 62, 63, 64, 65, 68, 69, 73, 74, 79, 80, 81, 92, 95, 119, 120}
)
# Xids an application causes (illegal address, MMU fault, reset channel): not the hardware.
APPLICATION_XIDS = frozenset({13, 31, 43, 45})
FACILITIES = frozenset(
    ("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
     "authpriv", "ftp", *(f"local{n}" for n in range(8)))
)  # fmt: skip
LEVELS = ("emerg", "alert", "crit", "err", "warn", "notice", "info", "debug")
MAX_EVENTS = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class KernelEvent:
    kind: str  # "xid" | "sxid" | "mce" | "edac" | "aer"
    severity: Severity
    subject: str  # a PCI address ("0000:09:00" as NVRM prints it), "memory", "cpu"
    code: int | None  # the Xid number
    level: str | None  # "err", "warn", ... when the layout carries it
    timestamp: str | None  # as printed: "1084456.074562", "2024-11-15T12:02:03,470068+00:00"
    message: str  # the kernel's text, prefixes removed
    raw: str


@dataclass(frozen=True, slots=True, kw_only=True)
class KernelEventGroup:
    """Every line of one kind, device, code and severity: how many, and the first."""

    kind: str
    severity: Severity
    subject: str
    code: int | None
    count: int
    first: KernelEvent


@dataclass(frozen=True, slots=True, kw_only=True)
class KernelLog:
    line_count: int
    events: list[KernelEvent]  # the first MAX_EVENTS
    event_count: int  # all of them, kept or not
    counts: dict[str, int]  # per kind
    groups: list[KernelEventGroup]  # over all events, in order of first appearance


def _strip_prefixes(line: str) -> tuple[str, str | None, str | None]:
    """The message of one log line, with its level and time stamp when it has them."""
    level = timestamp = None
    text = line.strip()
    # /dev/kmsg record: "6,1234,5678901,-;message"
    head, sep, rest = text.partition(";")
    if sep and head.count(",") >= 3 and head.split(",")[0].isdigit():
        fields = head.split(",")
        level = LEVELS[int(fields[0]) & 7] if fields[0].isdigit() else None
        timestamp = fields[2] if fields[2].isdigit() else None
        return rest.strip(), level, timestamp
    # dmesg --decode: "kern  :warn  : message"
    first, sep, rest = text.partition(":")
    if sep and first.strip() in FACILITIES:
        lvl, sep2, rest2 = rest.partition(":")
        if sep2 and lvl.strip() in LEVELS:
            level, text = lvl.strip(), rest2.strip()
    # dmesg --raw: "<4>[ ... ] message"
    if text.startswith("<") and ">" in text[:5] and text[1 : text.index(">")].isdigit():
        level = LEVELS[int(text[1 : text.index(">")]) & 7]
        text = text[text.index(">") + 1 :].lstrip()
    # syslog and journal: "Sep 19 16:18:02 host kernel: [..] message", "kernel: message"
    marker = text.find("kernel: ")
    if 0 <= marker < 80:
        text = text[marker + len("kernel: ") :].lstrip()
    # "[  123.456789]" or "[Sat Aug 13 09:31:18 2022]"
    if text.startswith("[") and "]" in text[:40]:
        end = text.index("]")
        timestamp = text[1:end].strip()
        text = text[end + 1 :].lstrip()
    # ISO: "2024-11-15T12:02:03,470068+00:00 message"
    word, _, rest = text.partition(" ")
    if len(word) >= 19 and word[:4].isdigit() and word[4:5] == "-" and word[10:11] == "T":
        timestamp, text = word, rest.lstrip()
    return text, level, timestamp


def _after(text: str, marker: str) -> str:
    return text[text.find(marker) + len(marker) :] if marker in text else ""


def _xid(message: str, kind: str) -> tuple[str, int | None, Severity]:
    """ "NVRM: Xid (PCI:0000:09:00): 79, pid=0, ..." -> ("0000:09:00", 79, "critical")."""
    inside = _after(message, "(PCI:")
    bus = inside.partition(")")[0].strip() or "unknown GPU"
    code_text = inside.partition("):")[2].strip().partition(",")[0].strip()
    code = int(code_text) if code_text.isdigit() else None
    if kind == "sxid":
        return bus, code, "warning"
    if code in CRITICAL_XIDS:
        return bus, code, "critical"
    return bus, code, "info" if code in APPLICATION_XIDS else "warning"


def _aer(message: str) -> tuple[str, Severity]:
    """ "pcieport 0000:00:01.1: AER: Uncorrected (Fatal) error received: ..." -> the port."""
    before = message.partition(" AER:")[0].partition("AER:")[0]
    subject = "unknown PCIe device"
    for word in before.split():
        token = word.rstrip(":")
        if token.count(":") >= 2 and "." in token:
            subject = token
    lowered = message.lower()
    if "fatal" in lowered and "non-fatal" not in lowered:
        return subject, "critical"
    if "uncorrect" in lowered or "non-fatal" in lowered:
        return subject, "warning"
    return subject, "info"


def classify(message: str) -> tuple[str, str, int | None, Severity] | None:
    """(kind, subject, code, severity) of a message that matters, else None."""
    if "Xid (PCI:" in message:
        kind = "sxid" if "SXid (PCI:" in message else "xid"
        subject, code, severity = _xid(message, kind)
        return kind, subject, code, severity
    # "AER: enabled with IRQ 24" at boot is no error; every error line says "error".
    if "AER:" in message and "error" in message.lower():
        subject, severity = _aer(message)
        return "aer", subject, None, severity
    lowered = message.lower()
    if message.startswith("EDAC ") and (" CE " in message or " UE " in message):
        return "edac", "memory", None, "critical" if " UE " in message else "warning"
    if "[hardware error]" in lowered or "machine check events logged" in lowered:
        fatal = any(w in lowered for w in ("uncorrected", "fatal", "context corrupt", "panic"))
        return "mce", "cpu", None, "critical" if fatal else "warning"
    return None


def parse(text: str) -> KernelLog:
    events: list[KernelEvent] = []
    counts: dict[str, int] = {}
    groups: dict[tuple[str, str, int | None, str], list] = {}
    total = lines = 0
    for raw in text.splitlines():
        if not raw.strip():
            continue
        lines += 1
        message, level, timestamp = _strip_prefixes(raw)
        found = classify(message)
        if found is None:
            continue
        kind, subject, code, severity = found
        counts[kind] = counts.get(kind, 0) + 1
        total += 1
        key = (kind, subject, code, severity)
        if len(events) < MAX_EVENTS or key not in groups:
            event = KernelEvent(
                kind=kind,
                severity=severity,
                subject=subject,
                code=code,
                level=level,
                timestamp=timestamp,
                message=message[:500],
                raw=raw.strip()[:500],
            )
            if len(events) < MAX_EVENTS:
                events.append(event)
            groups.setdefault(key, [0, event])
        groups[key][0] += 1
    return KernelLog(
        line_count=lines,
        events=events,
        event_count=total,
        counts=counts,
        groups=[
            KernelEventGroup(
                kind=k[0], severity=k[3], subject=k[1], code=k[2], count=n, first=first
            )
            for k, (n, first) in groups.items()
        ],
    )


LABELS = {"xid": "NVIDIA Xid", "sxid": "NVSwitch SXid", "mce": "machine check", "edac": "EDAC"}
LABELS["aer"] = "PCIe AER"


def findings(log: KernelLog, source: str = "health") -> list[Finding]:
    """One finding per kind, device and code (the first raw line, and how often), since boot."""
    found = []
    for group in log.groups:
        label = LABELS.get(group.kind, group.kind)
        label += f" {group.code}" if group.code is not None else ""
        times = f"{group.count} line{'s' if group.count != 1 else ''} since boot"
        found.append(
            Finding(
                source=source,
                severity=group.severity,
                subject=group.subject,
                message=f"kernel log: {label} ({times}): {group.first.message[:160]}",
                persistence="since_boot",
                raw=group.first.raw,
            )
        )
    return found


PARSERS: dict[str, Callable[[str], object]] = {"kernel-log": parse}
