"""bee's sessions. The logic lives in buildtools/; this file only wires it to nox."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

TEST_DEPS = [
    "pytest>=8",
    "hypothesis>=6.100",
    "jsonschema>=4.20",
    "ansible-core>=2.16",
    "botocore>=1.31",  # signs presigned S3 URLs for the upload tests against Swift's S3 API
]
RUFF = "ruff>=0.6"


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff lint and format check over the whole tree."""
    session.install(RUFF)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def tests(session: nox.Session) -> None:
    """Unit, property and replay tests (no root, no network, no VM). What CI runs."""
    session.install(*TEST_DEPS)
    session.run("pytest", *session.posargs)


@nox.session(venv_backend="none", default=False)
def nvidia_modules(session: nox.Session) -> None:
    """Build (or reuse from cache) the NVIDIA modules and user space for the pinned kernel."""
    session.run("python3", "-m", "buildtools.nvidia.build", *session.posargs, external=True)


@nox.session(venv_backend="none", default=False)
def build_iso(session: nox.Session) -> None:
    """Build the bee live ISO into dist/ (root on Debian 12 or 13; see --help)."""
    session.run("python3", "-m", "buildtools.image.build_iso", *session.posargs, external=True)


@nox.session(venv_backend="none", default=False)
def build_iso_container(session: nox.Session) -> None:
    """Build the ISO inside a privileged container (for non-Debian hosts)."""
    session.run("python3", "-m", "buildtools.image.container", *session.posargs, external=True)


@nox.session(venv_backend="none", default=False)
def bump_kernel(session: nox.Session) -> None:
    """Update DEBIAN_KERNEL_ABI in iso/builder/VERSIONS to the newest ABI on the mirror."""
    session.run("python3", "-m", "buildtools.pins.kernel", "bump", *session.posargs, external=True)


@nox.session(venv_backend="none", default=False)
def vm_test(session: nox.Session) -> None:
    """Boot the ISO in QEMU on emulated server hardware, run the smoke test, check the audit."""
    session.run("python3", "-m", "buildtools.vm.vm_test", *session.posargs, external=True)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Benchmark the audit on a synthetic big GPU server; prints a table, writes dist/bench.json."""
    session.run("python", "-m", "buildtools.bench.bench", *session.posargs)


@nox.session(venv_backend="none", default=False)
def nvidia_bootcheck(session: nox.Session) -> None:
    """Boot the pinned Debian kernel in QEMU and insmod the built NVIDIA modules (no GPU)."""
    session.run("python3", "-m", "buildtools.nvidia.bootcheck", *session.posargs, external=True)


@nox.session(venv_backend="none", default=False)
def fleet_vm_test(session: nox.Session) -> None:
    """Boot guests from an ISO in QEMU, gather them with ansible/fleet.yml, check the report."""
    session.run("python3", "-m", "buildtools.vm.fleet_test", *session.posargs, external=True)


@nox.session(venv_backend="none", default=False)
def build_netboot(session: nox.Session) -> None:
    """Lay a built ISO out for PXE/iPXE and HTTP in dist/netboot/ (-- --iso ISO --url URL)."""
    session.run("python3", "-m", "buildtools.netboot.artefacts", *session.posargs, external=True)
