"""`nox -s build_iso_container -- [build_iso options]`: the ISO build in a privileged container.

For hosts that are not Debian 12 or 13. Builds the image from buildtools/image/Containerfile, a
Debian 13 base plus the builder's host tools (buildtools/hosttools.py), tagged with a digest of
the recipe and that list, so a changed one is rebuilt and an unchanged one reused; then it runs
`python3 -m buildtools.image.build_iso` inside it with the source tree mounted at /src.
`--privileged` is required: live-build mounts /proc and /dev in its chroot and makes device nodes.
Files named by --authorized-keys, --vendor-dir and --out outside the tree are mounted too.
"""

from __future__ import annotations

import hashlib
import resource
import shutil
import sys
from pathlib import Path

from buildtools import hosttools
from buildtools.pins.versions import REPO_ROOT
from buildtools.runner import CommandError, Runner, interrupt_on_signals

CONTAINERFILE = REPO_ROOT / "buildtools" / "image" / "Containerfile"
# The build context: the recipe COPYs hosttools.py from it, the one list of host tools.
CONTEXT = REPO_ROOT / "buildtools"
RECIPE_INPUTS = (CONTAINERFILE, CONTEXT / "hosttools.py")
ENGINES = ("podman", "docker")
SOURCE_MOUNT = "/src"
BUILD_IMAGE_TIMEOUT_S = 3600
PULL_TIMEOUT_S = 600
BUILD_TIMEOUT_S = 4 * 3600
# build_iso options that name host paths, and where each goes in the container.
PATH_OPTIONS = {
    "--authorized-keys": ("/run/bee/authorized_keys", True),
    "--vendor-dir": ("/run/bee/vendor", True),
    "--out": ("/run/bee/out", False),
}


class ContainerError(Exception):
    """The container build cannot start; the message is one line."""


def find_engine(which=shutil.which) -> str:
    for engine in ENGINES:
        path = which(engine)
        if path:
            return path
    raise ContainerError(
        "no container engine (podman or docker) found: install one, or run "
        "`nox -s build_iso` as root on a Debian 12 or 13 host"
    )


def image_tag(inputs: tuple[Path, ...] = RECIPE_INPUTS) -> str:
    digest = hashlib.sha256()
    for path in inputs:
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return f"bee-builder:{digest.hexdigest()[:12]}"


def translate_args(args: list[str], repo: Path) -> tuple[list[str], list[str]]:
    """build_iso args as seen in the container, and the -v mounts they need.

    Paths inside the source tree are rewritten under /src; others are bind-mounted.
    """
    repo = repo.resolve()
    out_args: list[str] = []
    mounts: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        name, sep, inline = arg.partition("=")
        if name in PATH_OPTIONS:
            if sep:
                value = inline
            elif index + 1 < len(args):
                index += 1
                value = args[index]
            else:
                raise ContainerError(f"{name} needs a path")
            host = Path(value).expanduser().resolve()
            target, read_only = PATH_OPTIONS[name]
            if host == repo or repo in host.parents:
                inside = f"{SOURCE_MOUNT}/{host.relative_to(repo)}".rstrip("/.")
            else:
                if read_only and not host.exists():
                    raise ContainerError(f"{name} {value}: no such file or directory")
                if not read_only:
                    host.mkdir(parents=True, exist_ok=True)
                mounts += ["-v", f"{host}:{target}{':ro' if read_only else ''}"]
                inside = target
            out_args += [name, inside]
        else:
            out_args.append(arg)
        index += 1
    return out_args, mounts


# What the container asks for instead of the engine's default of 1048576 files and processes.
ULIMIT_CAPS = {"nofile": (resource.RLIMIT_NOFILE, 65536), "nproc": (resource.RLIMIT_NPROC, 16384)}


def ulimit_args(getrlimit=resource.getrlimit) -> list[str]:
    """--ulimit for open files and processes: the caller's own hard limit, capped.

    Unasked, podman gives the container 1048576 of each; where the engine lacks
    CAP_SYS_RESOURCE (a build host that is itself a container, like this project's, where
    podman's own process limit is 32768) runc cannot raise them and the container does not
    start: "error setting rlimit type 6: operation not permitted". Lowering a limit needs no
    privilege, and the build uses a few hundred processes.
    """
    argv = []
    for name, (which, cap) in ULIMIT_CAPS.items():
        hard = getrlimit(which)[1]
        value = cap if hard == resource.RLIM_INFINITY else min(hard, cap)
        argv += ["--ulimit", f"{name}={value}:{value}"]
    return argv


def run_argv(
    engine: str, tag: str, repo: Path, args: list[str], runtime: list[str] | None = None
) -> list[str]:
    inner, mounts = translate_args(args, repo)
    return [
        engine,
        *(runtime or []),
        "run",
        "--rm",
        "--privileged",
        *ulimit_args(),
        "-v",
        f"{repo.resolve()}:{SOURCE_MOUNT}",
        *mounts,
        "-w",
        SOURCE_MOUNT,
        tag,
        "python3",
        "-m",
        "buildtools.image.build_iso",
        *inner,
    ]


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    try:
        translate_args(args, REPO_ROOT)  # the operator's paths first, before anything installs
        tag = image_tag()
    except ContainerError as exc:
        print(f"build_iso_container: {exc}", file=sys.stderr)
        return 1
    log = REPO_ROOT / "dist" / "build-iso-container.log"
    interrupt_on_signals()  # the container run stops with us (podman run --rm then removes it)
    try:
        with Runner(log, fresh=True) as runner:
            engine = engine_argv(runner, Path("/proc/mounts").read_text(encoding="utf-8"))
            command = run_argv(engine[0], tag, REPO_ROOT, args, engine[1:])
            return _build_in_container(runner, engine, tag, command)
    except (CommandError, ContainerError, hosttools.HostToolsError) as exc:
        print(f"build_iso_container: {exc}", file=sys.stderr)
        print(f"build_iso_container: full log: {log}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def engine_argv(runner: Runner, mounts_text: str, which=shutil.which) -> list[str]:
    """The engine and its runtime options; on a Debian host, podman (and runc where the cgroups
    need it) is installed with apt-get when that is what is missing (hosttools.ensure)."""
    try:
        engine = find_engine(which)
    except ContainerError:
        if which("apt-get") is None:
            raise
        hosttools.ensure("build_iso_container", runner)
        engine = find_engine(which)
    hybrid = cgroup_hybrid(mounts_text)
    if Path(engine).name == "podman" and hybrid and not which("runc") and which("apt-get"):
        hosttools.ensure("build_iso_container, hybrid cgroups", runner)
    return [engine, *runtime_args(engine, mounts_text, which)]


def cgroup_hybrid(mounts_text: str) -> bool:
    """cgroup v1 controllers and a cgroup2 hierarchy beside them (/sys/fs/cgroup/unified)."""
    types = [line.split()[2] for line in mounts_text.splitlines() if len(line.split()) > 2]
    points = {line.split()[1] for line in mounts_text.splitlines() if " cgroup2 " in line}
    return "cgroup" in types and bool(points - {"/sys/fs/cgroup"})


def runtime_args(engine: str, mounts_text: str, which=shutil.which) -> list[str]:
    """podman's default OCI runtime, crun, refuses a hybrid cgroup layout ("cgroups in hybrid
    mode not supported", seen on the project's build host); runc runs containers there."""
    if Path(engine).name != "podman" or not cgroup_hybrid(mounts_text):
        return []
    if which("runc") is None:
        raise ContainerError(
            "this host mounts cgroups in hybrid mode (v1 controllers and /sys/fs/cgroup/unified), "
            "which podman's runtime crun refuses: apt-get install runc (podman then runs with "
            "--runtime runc)"
        )
    return ["--runtime", "runc"]


def base_image(containerfile: Path = CONTAINERFILE) -> str:
    """The image the Containerfile starts FROM."""
    for line in containerfile.read_text(encoding="utf-8").splitlines():
        words = line.split()
        if len(words) >= 2 and words[0].upper() == "FROM":
            return words[1]
    raise ContainerError(f"{containerfile} has no FROM line")


def ensure_base_image(runner: Runner, engine: list[str], base: str) -> None:
    """The FROM image, present or pulled; without registry access, how to make one here."""
    name = Path(engine[0]).name
    if runner.run([*engine, "image", "inspect", base], timeout_s=120, check=False).code == 0:
        return
    try:
        pull = [*engine, "pull", base]
        runner.run(pull, timeout_s=PULL_TIMEOUT_S, name=f"{name} pull {base}")
    except CommandError as exc:
        suite = base.rpartition(":")[2] or "trixie"
        raise ContainerError(
            f"{exc}. Without access to that registry, make the base image from a Debian mirror: "
            f"debootstrap --variant=minbase {suite} /tmp/base && "
            f"tar -C /tmp/base -c . | {name} import - {base}"
        ) from None


def _build_in_container(runner: Runner, engine: list[str], tag: str, command: list[str]) -> int:
    name = Path(engine[0]).name
    runner.run([*engine, "info"], timeout_s=120, name=f"{name} info")
    have = runner.run([*engine, "image", "inspect", tag], timeout_s=120, check=False)
    if have.code != 0:
        ensure_base_image(runner, engine, base_image())
        runner.say(f"building the builder image {tag} from {CONTAINERFILE.relative_to(REPO_ROOT)}")
        recipe = ["-f", str(CONTAINERFILE), str(CONTEXT)]
        build = [*engine, "build", "-t", tag, *recipe]
        runner.run(build, timeout_s=BUILD_IMAGE_TIMEOUT_S, on_line=print, name=f"{name} build")
    runner.say("$ " + " ".join(command))
    # build_iso's own progress lines, as they come; it bounds each of its commands itself.
    runner.run(command, timeout_s=BUILD_TIMEOUT_S, on_line=print, name=f"{name} run {tag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
