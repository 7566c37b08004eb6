"""buildtools.hosttools: every program the builder runs is listed with its Debian package."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from buildtools import hosttools

BUILDTOOLS = Path(__file__).resolve().parents[2] / "buildtools"
# First words of command lines that are not a literal program name, and what they stand for.
DYNAMIC = {
    "sys.executable": (),  # the builder's own Python (vm_test runs build_iso with it)
    "engine": ("podman", "docker"),  # container.find_engine picks one
    "*engine": ("podman", "docker", "runc"),  # [engine, --runtime runc] where crun cannot run
    "command": ("podman", "docker"),  # container.run_argv(engine, ...)
    "tool": ("apt-get", "apt-cache"),  # AptRepo._apt(tool, ...) is called with these only
    "self.argv": ("qemu-system-x86_64",),  # qemu.Vm, from qemu.machine_args
    "dest / 'bin/nvidia-smi'": (),  # the driver's own nvidia-smi, just built
    "list(...)": (),  # bench.run_measured, list(argv): the agent under measurement (sys.executable)
    "self.argv(...)": ("ssh",),  # vm_test.Ssh: ssh -F /dev/null ... root@guest
    # swift_s3: Debian's own Python running OpenStack Swift (python3-swift), which the tests
    # and fleet_vm_test --upload-to s3 check with swift_s3.available() and skip or say without.
    "/usr/bin/python3": (),
    "*argv": (),
    "args.ansible_playbook": ("ansible-playbook",),  # fleet_test --ansible-playbook
    # The image release's own debootstrap, unpacked under dist/ (nvidia/buildroot.py).
    "debootstrap / 'usr/sbin/debootstrap'": (),
    # The pinned kernel's own scripts/sign-file (linux-kbuild, with its headers), on the host
    # or under chroot in the build root (nvidia/signing.py).
    "sign_file": (),
    "str(sign_file)": (),
    "virt_fw_vars": ("virt-fw-vars",),  # vm_test --secure-boot-modules (vm/secureboot.py)
    # The host's qemu-system-x86_64, or a backport's unpacked under dist/ (vm/emulator.py);
    # that one runs on the libraries of the host's own qemu-system-x86.
    "*qemu_command": ("qemu-system-x86_64",),
    "binary": ("qemu-system-x86_64",),
}
# The runner itself; commands that run in the guest (over ssh) or in the agent's own runner
# (bench replays the audit through it), not on the build host.
NOT_HOST_COMMANDS = {"runner.py"}
GUEST = {"ssh", "self.system"}
RUNS = {"run", "Popen"}


def _programs(node: ast.expr, names: dict[str, ast.expr], constants: dict[str, str]) -> set[str]:
    """The programs of a command line: literal names, or the source text standing for one.

    `where.argv([...])` (a command run on the host or under chroot in the build root) counts as
    the inner command plus chroot; `nice -n N prog` as nice plus prog. Any other call standing
    for the command line is named by its function, `f(...)`, whatever its arguments.
    """
    if isinstance(node, ast.Name) and node.id in names:
        node = names[node.id]
    if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("install_command"):
        return {"apt-get"}
    if isinstance(node, ast.Call) and ast.unparse(node.func) == "where.argv" and node.args:
        return {"chroot", *_programs(node.args[0], names, constants)}
    if isinstance(node, ast.Call):
        return {ast.unparse(node.func) + "(...)"}
    if not (isinstance(node, ast.List | ast.Tuple) and node.elts):
        return {ast.unparse(node).replace('"', "'")}
    words = []
    for element in node.elts:
        if isinstance(element, ast.Constant) and isinstance(element.value, str):
            words.append(element.value)
        elif isinstance(element, ast.Name) and element.id in constants:
            words.append(constants[element.id])
        else:
            words.append(ast.unparse(element).replace('"', "'"))
    found = {words[0]}
    if words[0] == "nice":  # nice [-n N] PROGRAM ...
        rest = [w for w in words[1:] if not w.startswith("-") and not w.lstrip("-").isdigit()]
        found |= set(rest[:1])
    return found


def _literal(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def called_programs() -> dict[str, set[str]]:
    """program -> modules that run it, from every run()/Popen() call in buildtools/."""
    found: dict[str, set[str]] = {}
    for path in sorted(BUILDTOOLS.rglob("*.py")):
        if path.name in NOT_HOST_COMMANDS:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constants = {
            target.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
            for target in node.targets
            if isinstance(target, ast.Name) and isinstance(node.value.value, str)
        }
        for func in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
            names = {
                target.id: node.value
                for node in ast.walk(func)
                if isinstance(node, ast.Assign)
                for target in node.targets
                if isinstance(target, ast.Name)
            }
            for call in [n for n in ast.walk(func) if isinstance(n, ast.Call)]:
                if not isinstance(call.func, ast.Attribute):
                    continue  # run(args) in vm_test is its own function, not a command
                name = call.func.attr
                receiver = ast.unparse(call.func.value)
                if name in RUNS and call.args and receiver not in GUEST:
                    for program in _programs(call.args[0], names, constants):
                        found.setdefault(program, set()).add(str(path.relative_to(BUILDTOOLS)))
                elif (name == "_apt" and call.args and isinstance(call.args[0], ast.Constant)) or (
                    ast.unparse(call.func) == "shutil.which"
                    and isinstance(call.args[0], ast.Constant)
                ):
                    found.setdefault(call.args[0].value, set()).add(path.name)
    return found


def test_every_program_the_builder_runs_is_on_the_list() -> None:
    found = called_programs()
    # The scan itself works: it sees the calls we know are there.
    for known in ("lb", "modinfo", "dpkg-deb", "xorriso", "ssh-keygen", "qemu-system-x86_64"):
        assert known in found, f"scan missed {known}"
    unknown = {
        program: sorted(where)
        for program, where in found.items()
        if program not in hosttools.TOOLS and program not in DYNAMIC
    }
    assert unknown == {}, "add these to buildtools/hosttools.py TOOLS (or DYNAMIC here)"
    for stands_for in DYNAMIC.values():
        assert set(stands_for) <= set(hosttools.TOOLS)


def test_every_session_tool_is_listed_with_a_package() -> None:
    for session, tools in hosttools.SESSIONS.items():
        assert tools, session
        for tool in tools:
            assert hosttools.TOOLS[tool], (session, tool)
    for session in hosttools.EXTRA_PACKAGES:
        assert session in hosttools.SESSIONS


def _owner(path: str) -> str | None:
    for candidate in dict.fromkeys([path, os.path.realpath(path), path.replace("/usr/", "/")]):
        result = subprocess.run(
            ["dpkg-query", "-S", candidate], capture_output=True, text=True, check=False
        )
        owners = [
            line.partition(":")[0].strip()
            for line in result.stdout.splitlines()
            if not line.startswith("diversion by")
        ]
        if result.returncode == 0 and owners:
            return owners[0]
    return None


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="not a Debian host")
def test_the_packages_named_are_the_ones_that_ship_the_programs_here() -> None:
    checked = 0
    for tool, package in hosttools.TOOLS.items():
        path = shutil.which(tool)
        if path is None:
            continue
        owner = _owner(path)
        if owner is None:  # installed outside dpkg (e.g. /usr/local/bin)
            continue
        assert owner.split(",")[0].split(":")[0] == package, (tool, path, owner)
        checked += 1
    assert checked >= 5  # apt, dpkg, coreutils, tar, dash are on every Debian host


def test_missing_packages_are_named_once_in_list_order() -> None:
    present = {"apt-get", "apt-cache", "dpkg-deb", "dpkg-query", "dpkg", "tar", "sh", "nice", "ldd"}
    present.add("chroot")

    def which(tool: str) -> str | None:
        return f"/usr/bin/{tool}" if tool in present else None

    assert hosttools.missing_packages("nvidia_modules", which, lambda _path: True) == [
        "make",
        "kmod",
        "binutils",
        "xz-utils",
        "openssl",
    ]
    assert hosttools.missing_packages("vm_test", which, lambda _path: False) == [
        "qemu-system-x86",
        "openssh-client",
        "xorriso",
        "openssl",
    ]
    assert hosttools.missing_packages("build_iso", which, lambda p: p != hosttools.KEYRING)[-1] == (
        "debian-archive-keyring"
    )


def test_not_root_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hosttools, "missing_packages", lambda _session: ["kmod", "make"])
    monkeypatch.setattr(hosttools, "missing_tools", lambda _session: ["modinfo", "make"])
    with pytest.raises(hosttools.HostToolsError) as caught:
        hosttools.ensure("nvidia_modules", runner=None, euid=1000)  # type: ignore[arg-type]
    assert str(caught.value) == (
        "nvidia_modules needs modinfo, make: as root run `apt-get install kmod make`"
    )


def test_nothing_missing_runs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hosttools, "missing_packages", lambda _session: [])
    assert hosttools.ensure("vm_test", runner=None, euid=0) == []  # type: ignore[arg-type]


def test_install_waits_for_the_dpkg_lock() -> None:
    argv = hosttools.install_command(["kmod"])
    assert argv[0] == "apt-get" and argv[-2:] == ["install", "kmod"]
    assert "DPkg::Lock::Timeout=600" in argv


# -- every nox session installs what its code runs ------------------------------------------

REPO = BUILDTOOLS.parent
# Packages in every `debootstrap --variant=minbase` root (Debian 12 and 13, see docs/image.md):
# their programs need no install.
MINBASE = {"apt", "dpkg", "coreutils", "tar", "dash", "mount", "libc-bin"}
# What a session's modules can run but the session does not ensure, and why. A stale entry
# fails the test too, so the list stays true.
NOT_ENSURED = {
    ("build_netboot", "qemu-system-x86_64"): "imports qemu.parse_isolinux_append, runs no VM",
    ("build_iso_container", "docker"): "used when it is there, never installed (podman is)",
    ("fleet_vm_test", "ansible-playbook"): "PyPI's or Debian's; fleet_test checks it first",
    ("vm_test", "virt-fw-vars"): "--secure-boot-modules only; not in Debian 12 (PyPI's"
    " virt-firmware), vm_test names both when it is missing",
    ("fleet_vm_test", "virt-fw-vars"): "imports vm_test, never boots with Secure Boot",
}


def nox_session_modules() -> dict[str, str]:
    """nox session -> the buildtools module it runs (`session.run(..., "-m", MODULE)`)."""
    tree = ast.parse((REPO / "noxfile.py").read_text(encoding="utf-8"))
    found = {}
    for func in [node for node in tree.body if isinstance(node, ast.FunctionDef)]:
        for call in [n for n in ast.walk(func) if isinstance(n, ast.Call)]:
            words = [a.value for a in call.args if isinstance(a, ast.Constant)]
            if ast.unparse(call.func) == "session.run" and "-m" in words:
                found[func.name] = words[words.index("-m") + 1]
    return found


def _module_path(module: str) -> Path:
    path = REPO / (module.replace(".", "/") + ".py")
    return path if path.is_file() else REPO / module.replace(".", "/") / "__init__.py"


def imported_closure(module: str) -> set[Path]:
    """The files of `module` and every buildtools module it imports (also inside functions)."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        path = _module_path(todo.pop())
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("buildtools"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    todo.append(sub if _module_path(sub).is_file() else node.module)
            elif isinstance(node, ast.Import):
                todo += [a.name for a in node.names if a.name.startswith("buildtools")]
    return seen


def ensured_sessions(paths: set[Path]) -> set[str]:
    """The SESSIONS keys given to hosttools.ensure(...) in these files."""
    keys: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "hosttools.ensure":
                keys |= {
                    c.value
                    for c in ast.walk(node.args[0])
                    if isinstance(c, ast.Constant) and isinstance(c.value, str)
                }
    return keys


def test_every_nox_session_ensures_the_tools_its_code_runs() -> None:
    """What a session's code (its module and all it imports) can run is installed by a
    hosttools.ensure(...) in that code, before the long steps, unless minbase has it."""
    sessions = nox_session_modules()
    for known in ("build_iso", "vm_test", "build_netboot", "build_iso_container"):
        assert known in sessions, f"noxfile scan missed {known}"
    calls = called_programs()
    gaps, used_exceptions = {}, set()
    for session, module in sessions.items():
        paths = imported_closure(module)
        names = {str(path.relative_to(BUILDTOOLS)) for path in paths} | {p.name for p in paths}
        runs = set()
        for program, where in calls.items():
            if where & names:
                runs |= set(DYNAMIC.get(program, (program,)))
        keys = ensured_sessions(paths)
        assert keys <= set(hosttools.SESSIONS), (session, keys - set(hosttools.SESSIONS))
        covered = set().union(*(hosttools.SESSIONS[key] for key in keys))
        for program in sorted(runs - covered):
            if hosttools.TOOLS[program] in MINBASE:
                continue
            if (session, program) in NOT_ENSURED:
                used_exceptions.add((session, program))
                continue
            gaps.setdefault(session, []).append(program)
    assert gaps == {}, "ensure these (SESSIONS + hosttools.ensure in the session's code)"
    assert used_exceptions == set(NOT_ENSURED), "NOT_ENSURED has stale entries"
