"""The container wrapper (image/container.py): how build_iso's arguments cross into it."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from buildtools import hosttools
from buildtools.image import container


def test_paths_in_the_tree_are_rewritten_under_src(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "keys").mkdir(parents=True)
    (repo / "keys/ops.pub").write_text("x")
    args, mounts = container.translate_args(
        ["--authorized-keys", str(repo / "keys/ops.pub"), "--no-nvidia", f"--out={repo / 'dist'}"],
        repo,
    )
    assert args == ["--authorized-keys", "/src/keys/ops.pub", "--no-nvidia", "--out", "/src/dist"]
    assert mounts == []


def test_paths_outside_the_tree_are_mounted(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    keys = tmp_path / "ops.pub"
    keys.write_text("x")
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    args, mounts = container.translate_args(
        ["--authorized-keys", str(keys), "--vendor-dir", str(vendor), "--out", str(tmp_path / "o")],
        repo,
    )
    assert args == [
        "--authorized-keys",
        "/run/bee/authorized_keys",
        "--vendor-dir",
        "/run/bee/vendor",
        "--out",
        "/run/bee/out",
    ]
    assert mounts == [
        "-v",
        f"{keys}:/run/bee/authorized_keys:ro",
        "-v",
        f"{vendor}:/run/bee/vendor:ro",
        "-v",
        f"{tmp_path / 'o'}:/run/bee/out",
    ]


def test_missing_input_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(container.ContainerError, match="no such file"):
        container.translate_args(["--authorized-keys", str(tmp_path / "nope")], tmp_path / "r")


def test_run_is_privileged_with_the_tree_at_src(tmp_path: Path) -> None:
    argv = container.run_argv("/usr/bin/podman", "bee-builder:abc", tmp_path, ["--no-nvidia"])
    assert argv[:4] == ["/usr/bin/podman", "run", "--rm", "--privileged"]
    assert f"{tmp_path}:/src" in argv
    assert argv[-4:] == ["python3", "-m", "buildtools.image.build_iso", "--no-nvidia"]


def test_no_engine_says_what_to_do() -> None:
    with pytest.raises(container.ContainerError, match="nox -s build_iso"):
        container.find_engine(which=lambda _name: None)


def test_image_tag_follows_the_recipe_and_the_tool_list(tmp_path: Path) -> None:
    recipe, tools = tmp_path / "Containerfile", tmp_path / "hosttools.py"
    recipe.write_text("FROM debian:trixie\n")
    tools.write_text("TOOLS = {}\n")
    first = container.image_tag((recipe, tools))
    recipe.write_text("FROM debian:trixie\nRUN true\n")
    second = container.image_tag((recipe, tools))
    tools.write_text("TOOLS = {'lb': 'live-build'}\n")
    assert (
        first.startswith("bee-builder:")
        and len({first, second, container.image_tag((recipe, tools))}) == 3
    )


def test_the_base_is_debian_13_and_the_tools_come_from_the_one_list(tmp_path: Path) -> None:
    assert container.base_image() == "docker.io/library/debian:trixie"
    lines = container.CONTAINERFILE.read_text().splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    # No hand-kept package list beside hosttools.py: the recipe installs python3 and its output.
    assert "COPY hosttools.py " in text and "hosttools.py packages build_iso)" in text
    for package in ("live-build", "debootstrap", "xorriso", "kmod"):
        assert package not in text
    assert container.CONTEXT / "hosttools.py" in container.RECIPE_INPUTS
    recipe = tmp_path / "Containerfile"
    recipe.write_text("# no base\nRUN true\n")
    with pytest.raises(container.ContainerError, match="no FROM line"):
        container.base_image(recipe)


# /proc/mounts lines of this project's build host (hybrid) and of a cgroup v2 host.
HYBRID = """tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
"""
UNIFIED = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n"


def test_podman_runs_with_runc_where_crun_refuses_hybrid_cgroups() -> None:
    assert container.cgroup_hybrid(HYBRID)
    assert not container.cgroup_hybrid(UNIFIED)
    runc = lambda name: f"/usr/sbin/{name}"  # noqa: E731
    assert container.runtime_args("/usr/bin/podman", HYBRID, runc) == ["--runtime", "runc"]
    assert container.runtime_args("/usr/bin/podman", UNIFIED, runc) == []
    assert container.runtime_args("/usr/bin/docker", HYBRID, runc) == []
    with pytest.raises(container.ContainerError, match="apt-get install runc"):
        container.runtime_args("/usr/bin/podman", HYBRID, lambda _name: None)
    argv = container.run_argv("podman", "t", Path("/r"), [], ["--runtime", "runc"])
    assert argv[:4] == ["podman", "--runtime", "runc", "run"]


def test_a_debian_host_without_an_engine_gets_podman_and_runc_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    installed: list[str] = []
    on_path = {"apt-get"}

    def ensure(session: str, _runner: object) -> list[str]:
        installed.append(session)
        on_path.update(hosttools.SESSIONS[session])
        return []

    monkeypatch.setattr(hosttools, "ensure", ensure)
    which = lambda name: f"/usr/bin/{name}" if name in on_path else None  # noqa: E731
    argv = container.engine_argv(None, HYBRID, which)  # type: ignore[arg-type]
    assert installed == ["build_iso_container", "build_iso_container, hybrid cgroups"]
    assert argv == ["/usr/bin/podman", "--runtime", "runc"]
    # docker, when it is what the host has, is used as it is; nothing is installed.
    installed.clear()
    on_path.clear()
    on_path.add("docker")
    assert container.engine_argv(None, HYBRID, which) == ["/usr/bin/docker"]  # type: ignore[arg-type]
    assert installed == []
    # No apt-get: the one line that says what to do, nothing tried.
    on_path.clear()
    with pytest.raises(container.ContainerError, match="no container engine"):
        container.engine_argv(None, UNIFIED, which)  # type: ignore[arg-type]
    assert installed == []


def test_the_container_asks_for_limits_the_caller_has() -> None:
    limits = {resource.RLIMIT_NOFILE: (1024, 20000), resource.RLIMIT_NPROC: (96549, 96549)}
    assert container.ulimit_args(limits.__getitem__) == [
        "--ulimit",
        "nofile=20000:20000",
        "--ulimit",
        "nproc=16384:16384",
    ]
    unlimited = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
    assert "nofile=65536:65536" in container.ulimit_args(lambda _which: unlimited)
    argv = container.run_argv("podman", "t", Path("/r"), [])
    assert argv[argv.index("--privileged") + 1] == "--ulimit"
