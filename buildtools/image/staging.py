"""The staged overlay: what build_iso.py lays over the image, assembled under dist/ per build.

Pure file work, no root and no network, so every step is unit-tested
(tests/buildtools/image/test_staging.py). The source overlay `iso/overlay/` is only ever read.

    staging = fresh_staging(dist / "staging")
    copy_overlay(OVERLAY_DIR, staging)
    access = inject_authorized_keys(staging, keys_file)      # or the password-fallback marker
    inject_agent(staging, package_agent(AGENT_DIR, dist / "agent").zipapp, AGENT_DIR / "bee")
    inject_spec(staging, read_spec(spec_file))                # with --spec
    inject_vendor(staging, VENDOR_DIR)
    inject_nvidia(staging, nvidia_cache_dir)                 # unless --no-nvidia
    write_release(staging, release)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import shlex
import shutil
import stat
import tempfile
import zipapp
from dataclasses import dataclass, fields
from pathlib import Path

from buildtools.pins.versions import REPO_ROOT

OVERLAY_DIR = REPO_ROOT / "iso" / "overlay"
VENDOR_DIR = REPO_ROOT / "iso" / "vendor"
AGENT_DIR = REPO_ROOT / "agent"

VENDOR_BINARIES = ("storcli64", "sas2ircu", "sas3ircu", "mstflint")
PASSWORD_FALLBACK_MARKER = Path("etc/bee/password-fallback")
AUTHORIZED_KEYS = Path("root/.ssh/authorized_keys")
NVIDIA_MODULE_DIR = Path("usr/local/lib/nvidia")
NVIDIA_FIRMWARE_DIR = NVIDIA_MODULE_DIR / "firmware"
NVIDIA_BINARIES = ("nvidia-smi", "nvidia-modprobe", "nvidia-persistenced")
SUPPORTED_GPUS = "supported-gpus.json"
# The certificate the modules are signed with (buildtools/nvidia/signing.py), for mokutil.
MODULE_SIGNING_CERTS = ("module-signing.der", "module-signing.pem")
AGENT_ZIPAPP = "bee.pyz"
# The zipapp runs agent/bee/__main__.py itself, so /usr/local/bin/bee ends through the same
# exit path as `python3 -m bee` (exit_process, a quiet Ctrl-C during start-up).
AGENT_MAIN = 'import runpy\n\nrunpy.run_module("bee", run_name="__main__", alter_sys=True)\n'

# OpenSSH public key types (sshd(8) AUTHORIZED_KEYS FILE FORMAT).
SSH_KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ssh-dss",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
        "ssh-ed25519-cert-v01@openssh.com",
        "ssh-rsa-cert-v01@openssh.com",
        "ecdsa-sha2-nistp256-cert-v01@openssh.com",
        "ecdsa-sha2-nistp384-cert-v01@openssh.com",
        "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    }
)


class StagingError(Exception):
    """Something the build was given or found is unusable; the message is one line."""


# -- staging dir and source overlay ----------------------------------------------------------


def fresh_staging(path: Path) -> Path:
    """An empty staging dir at `path` (a previous one is removed first)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def copy_overlay(overlay_dir: Path, staging: Path) -> None:
    """Copy the source overlay into the staging dir, keeping modes and symlinks."""
    if not overlay_dir.is_dir():
        raise StagingError(f"overlay source {overlay_dir} is not a directory")
    shutil.copytree(overlay_dir, staging, symlinks=True, dirs_exist_ok=True)


def tree_digest(root: Path) -> str:
    """sha256 over every path, mode, symlink target and file content under `root`."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        digest.update(f"{path.relative_to(root)}\0{stat.S_IMODE(info.st_mode):o}\0".encode())
        if path.is_symlink():
            digest.update(os.readlink(path).encode())
        elif path.is_file():
            digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


# -- SSH access ------------------------------------------------------------------------------


def _split_options(line: str) -> list[str]:
    """authorized_keys fields: whitespace separated, double quotes protect spaces in options."""
    tokens: list[str] = []
    current: list[str] = []
    quoted = False
    for char in line:
        if char == '"':
            quoted = not quoted
        if char in " \t" and not quoted:
            if current:
                tokens.append("".join(current))
                current = []
            continue
        current.append(char)
    if current:
        tokens.append("".join(current))
    return tokens


def _check_key_line(line: str) -> str | None:
    """Why `line` is not an authorized_keys entry, or None when it is one."""
    tokens = _split_options(line)
    for index, token in enumerate(tokens):
        if token not in SSH_KEY_TYPES:
            continue
        if index > 1:
            return f"unexpected text before the key type {token}"
        if index + 1 >= len(tokens):
            return f"{token} without key data"
        try:
            blob = base64.b64decode(tokens[index + 1], validate=True)
        except (binascii.Error, ValueError):
            return f"{token} key data is not base64"
        # The blob starts with its own type: uint32 length + name (RFC 4253 6.6).
        length = int.from_bytes(blob[:4], "big") if len(blob) >= 4 else -1
        embedded = blob[4 : 4 + length].decode("ascii", errors="replace")
        if length <= 0 or embedded != token:
            return f"key data does not hold a {token} key"
        return None
    if "PRIVATE KEY" in line:
        return "this is a private key; give the .pub file"
    return "no SSH public key type (ssh-ed25519, ssh-rsa, ecdsa-sha2-...) on the line"


def validate_authorized_keys(text: str, source: str) -> list[str]:
    """The key lines of an authorized_keys file; StagingError naming the first bad line."""
    keys: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        problem = _check_key_line(line)
        if problem is not None:
            raise StagingError(f"{source}:{number}: not an SSH public key: {problem}")
        keys.append(line)
    if not keys:
        raise StagingError(f"{source}: no SSH public keys in the file")
    return keys


def read_authorized_keys(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise StagingError(f"{path}: not a text file of SSH public keys") from None
    except OSError as exc:
        raise StagingError(f"cannot read authorized keys {path}: {exc.strerror}") from None
    return validate_authorized_keys(text, str(path))


def inject_authorized_keys(staging: Path, keys: list[str] | None) -> str:
    """root/.ssh/authorized_keys (0700 dir, 0600 file), or the password-fallback marker.

    Returns the access mode written to the release file: "authorized-keys" or
    "password-fallback".
    """
    if keys:
        ssh_dir = staging / AUTHORIZED_KEYS.parent
        ssh_dir.mkdir(parents=True, exist_ok=True)
        ssh_dir.chmod(0o700)
        (staging / "root").chmod(0o700)
        target = staging / AUTHORIZED_KEYS
        target.write_text("\n".join(keys) + "\n", encoding="utf-8")
        target.chmod(0o600)
        return "authorized-keys"
    marker = staging / PASSWORD_FALLBACK_MARKER
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(
        "# Set by the build: no authorized_keys were given. bee-sshsetup generates a one-time\n"
        "# root password at every boot and shows it on the local console only.\n",
        encoding="utf-8",
    )
    return "password-fallback"


# -- the hardware spec -----------------------------------------------------------------------

SPEC_PATH = Path("etc/bee/spec.toml")


def read_spec(path: Path) -> bytes:
    """A spec file's bytes, checked with the agent's own loader: a typo in it is reported
    (file, line, key) before the build starts, not found on the console of every machine."""
    import sys

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise StagingError(f"cannot read spec {path}: {exc.strerror}") from None
    agent = str(AGENT_DIR)
    if agent not in sys.path:
        sys.path.insert(0, agent)
    from bee.spec.load import SpecError, load_spec

    try:
        load_spec(data, str(path))
    except SpecError as exc:
        raise StagingError(f"spec: {exc}") from None
    return data


def inject_spec(staging: Path, data: bytes) -> None:
    """/etc/bee/spec.toml, which bee-audit-boot passes to `bee audit --spec`."""
    target = staging / SPEC_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    target.chmod(0o644)


# -- the upload URL --------------------------------------------------------------------------

UPLOAD_URL_PATH = Path("etc/bee/upload-url")


def check_upload_url(url: str) -> str:
    """The URL bee-upload.service will PUT to, checked with the agent's own rules (http or
    https, a host) before the build starts."""
    import sys

    agent = str(AGENT_DIR)
    if agent not in sys.path:
        sys.path.insert(0, agent)
    from bee.upload import UploadError, target

    try:
        target(url, "check.json")
    except UploadError as exc:
        raise StagingError(f"--upload-url: {exc}") from None
    return url.strip()


def inject_upload_url(staging: Path, url: str) -> None:
    """/etc/bee/upload-url: bee-upload.service runs when it exists (bee.upload= on the kernel
    command line still wins)."""
    target = staging / UPLOAD_URL_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(url + "\n", encoding="utf-8")
    target.chmod(0o644)


# -- the agent -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentBuild:
    zipapp: Path
    rebuilt: bool


def _agent_sources(agent_dir: Path) -> list[Path]:
    package = agent_dir / "bee"
    return [
        path
        for path in sorted(package.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    ]


def package_agent(agent_dir: Path, out_dir: Path) -> AgentBuild:
    """bee.pyz from agent/bee/, rebuilt only when a source file is newer than the artefact."""
    sources = _agent_sources(agent_dir)
    if not (agent_dir / "bee" / "cli.py").is_file():
        raise StagingError(f"no agent at {agent_dir}/bee (bee/cli.py is missing)")
    target = out_dir / AGENT_ZIPAPP
    if target.is_file():
        built = target.stat().st_mtime
        if all(path.stat().st_mtime <= built for path in sources):
            return AgentBuild(zipapp=target, rebuilt=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        tree = Path(tmp) / "tree"
        for path in sources:
            dest = tree / path.relative_to(agent_dir)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
        (tree / "__main__.py").write_text(AGENT_MAIN, encoding="utf-8")
        partial = Path(tmp) / AGENT_ZIPAPP
        zipapp.create_archive(tree, partial, interpreter="/usr/bin/python3")
        partial.chmod(0o755)
        os.replace(partial, target)
    return AgentBuild(zipapp=target, rebuilt=True)


def inject_agent(staging: Path, zipapp_path: Path, package_dir: Path) -> None:
    """/usr/local/bin/bee (the zipapp) and the package for `python3 -m bee`."""
    bin_dir = staging / "usr/local/bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(zipapp_path, bin_dir / "bee")
    (bin_dir / "bee").chmod(0o755)
    shutil.copytree(
        package_dir,
        staging / "usr/lib/python3/dist-packages/bee",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        dirs_exist_ok=True,
    )


# -- vendor binaries -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class VendorReport:
    found: tuple[str, ...]
    missing: tuple[str, ...]
    ignored: tuple[str, ...]


def inject_vendor(staging: Path, vendor_dir: Path, *, must_exist: bool = False) -> VendorReport:
    """Copy the optional vendor tools in `vendor_dir` executable into staged /usr/local/bin/.

    `must_exist`: the operator named the dir (--vendor-dir), so its absence is an error.
    """
    if not vendor_dir.is_dir():
        if must_exist:
            raise StagingError(f"vendor dir {vendor_dir} does not exist")
        return VendorReport(found=(), missing=VENDOR_BINARIES, ignored=())
    found, missing = [], []
    for name in VENDOR_BINARIES:
        source = vendor_dir / name
        if not source.exists():
            missing.append(name)
            continue
        if not source.is_file():
            raise StagingError(f"vendor binary {source} is not a regular file")
        dest = staging / "usr/local/bin" / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
        dest.chmod(0o755)
        found.append(name)
    ignored = sorted(
        path.name
        for path in vendor_dir.iterdir()
        if path.name not in VENDOR_BINARIES and path.name != "README.md"
    )
    return VendorReport(found=tuple(found), missing=tuple(missing), ignored=tuple(ignored))


# -- NVIDIA ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class NvidiaPayload:
    version: str
    flavours: tuple[str, ...]
    source: str
    modules: tuple[str, ...]
    signing: dict | None = None  # the manifest's "signing" (origin, subject, cert_sha256...)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_entry(cache_dir: Path) -> dict:
    """An NVIDIA cache entry's manifest, after checking every file it lists."""
    manifest_path = cache_dir / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StagingError(f"NVIDIA cache {cache_dir}: unreadable manifest.json: {exc}") from None
    if not isinstance(manifest, dict) or not manifest.get("version"):
        raise StagingError(f"{manifest_path}: no driver version in the manifest")
    hashes = manifest.get("sha256")
    if isinstance(hashes, dict):
        for relative, expected in hashes.items():
            path = cache_dir / relative
            if not path.is_file() or _sha256(path) != expected:
                raise StagingError(f"NVIDIA cache {cache_dir}: {relative} is missing or altered")
    module_names = manifest.get("modules") or []
    modules = [cache_dir / "modules" / name for name in module_names]
    if not modules or any(not path.is_file() for path in modules):
        raise StagingError(f"NVIDIA cache {cache_dir}: modules {module_names} not all present")
    if not (cache_dir / "bin" / "nvidia-smi").is_file():
        raise StagingError(f"NVIDIA cache {cache_dir}: bin/nvidia-smi is missing")
    if not (cache_dir / SUPPORTED_GPUS).is_file():
        raise StagingError(f"NVIDIA cache {cache_dir}: {SUPPORTED_GPUS} is missing")
    return manifest


def _user_space(cache_dir: Path, manifest: dict) -> dict[str, str]:
    """sha256 of everything but the modules: what every flavour's entry must share."""
    hashes = manifest.get("sha256") if isinstance(manifest.get("sha256"), dict) else {}
    return {rel: digest for rel, digest in hashes.items() if not rel.startswith("modules/")}


def inject_nvidia(staging: Path, cache_dirs: list[Path]) -> NvidiaPayload:
    """Lay the NVIDIA cache entries (buildtools/nvidia/build.py, one per flavour) into the tree.

    modules/*.ko and manifest.json -> /usr/local/lib/nvidia/<flavour>/; from the first entry
    (the others must hold the very same files): bin/* -> /usr/local/bin/, lib/* (with the .so.1
    links) -> /usr/lib/, firmware/nvidia/<v>/ -> /usr/local/lib/nvidia/firmware/nvidia/<v>/
    (bee-nvidia points the kernel's firmware loader there), supported-gpus.json ->
    /usr/local/lib/nvidia/ (bee-nvidia picks the flavour from it), and for signed entries the
    certificate, module-signing.der and .pem, -> /usr/local/lib/nvidia/ (the one the audit and
    docs/secure-boot.md point mokutil at). Checks the manifests' sha256s.
    """
    if not cache_dirs:
        raise StagingError("no NVIDIA cache entry to ship")
    entries = [(Path(path), _read_entry(Path(path))) for path in cache_dirs]
    first_dir, first = entries[0]
    flavours = []
    for cache_dir, manifest in entries:
        flavour = str(manifest.get("flavour") or "")
        if flavour in flavours or flavour not in ("open", "proprietary"):
            raise StagingError(f"NVIDIA cache {cache_dir}: flavour {flavour!r} unknown or twice")
        if manifest["version"] != first["version"]:
            versions = f"{first['version']} and {manifest['version']}"
            raise StagingError(f"NVIDIA caches of two driver versions: {versions}")
        if _user_space(cache_dir, manifest) != _user_space(first_dir, first):
            raise StagingError(
                f"NVIDIA caches {first_dir.name} and {cache_dir.name} differ outside modules/: "
                "one user space must serve both flavours"
            )
        flavours.append(flavour)
        module_dir = staging / NVIDIA_MODULE_DIR / flavour
        module_dir.mkdir(parents=True, exist_ok=True)
        for path in sorted((cache_dir / "modules").glob("*.ko")):
            shutil.copy2(path, module_dir / path.name)
            (module_dir / path.name).chmod(0o644)
        shutil.copy2(cache_dir / "manifest.json", module_dir / "manifest.json")
    shutil.copy2(first_dir / SUPPORTED_GPUS, staging / NVIDIA_MODULE_DIR / SUPPORTED_GPUS)
    signing = first.get("signing") if isinstance(first.get("signing"), dict) else None
    if signing is not None:
        for name in MODULE_SIGNING_CERTS:
            shutil.copy2(first_dir / name, staging / NVIDIA_MODULE_DIR / name)
            (staging / NVIDIA_MODULE_DIR / name).chmod(0o644)
    bin_dir = staging / "usr/local/bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in NVIDIA_BINARIES:
        source = first_dir / "bin" / name
        if source.is_file():
            shutil.copy2(source, bin_dir / name)
            (bin_dir / name).chmod(0o755)
    lib_dir = staging / "usr/lib"
    lib_dir.mkdir(parents=True, exist_ok=True)
    libs = first_dir / "lib"
    for path in sorted(libs.iterdir()) if libs.is_dir() else []:
        dest = lib_dir / path.name
        if dest.is_symlink() or dest.exists():
            dest.unlink()
        if path.is_symlink():
            dest.symlink_to(os.readlink(path))
        else:
            shutil.copy2(path, dest)
    firmware = first_dir / "firmware"
    if firmware.is_dir():
        shutil.copytree(firmware, staging / NVIDIA_FIRMWARE_DIR, dirs_exist_ok=True)
    return NvidiaPayload(
        version=str(first["version"]),
        flavours=tuple(flavours),
        source=str(first.get("source") or "unknown"),
        modules=tuple(first.get("modules") or ()),
        signing=signing,
    )


# -- release file and motd -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Release:
    """/etc/bee-release: what this image is and how it was built (KEY=VALUE, shell-quoted)."""

    bee_version: str
    bee_git_commit: str
    bee_git_dirty: bool
    bee_build_time: str
    debian_release: str
    debian_kernel_abi: str
    nvidia_driver_version: str
    nvidia_flavour: str  # the flavours shipped, space separated: "open proprietary"
    nvidia_source: str
    live_build_version: str
    ssh_access: str

    def render(self) -> str:
        lines = ["# bee image build information (written by buildtools/image/build_iso.py)"]
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool):
                value = "yes" if value else "no"
            lines.append(f"{field.name.upper()}={shlex.quote(str(value))}")
        return "\n".join(lines) + "\n"

    def motd(self) -> str:
        dirty = " (with uncommitted changes)" if self.bee_git_dirty else ""
        if self.nvidia_driver_version == "none":
            nvidia = "none (built with --no-nvidia)"
        else:
            nvidia = (
                f"{self.nvidia_driver_version} ({self.nvidia_flavour.replace(' ', ' + ')} modules, "
                f"{self.nvidia_source}; bee-nvidia picks per GPU)"
            )
        return (
            "\n"
            f"bee {self.bee_version} hardware audit image\n"
            f"  built {self.bee_build_time} from {self.bee_git_commit}{dirty}\n"
            f"  Debian {self.debian_release}, kernel {self.debian_kernel_abi}, "
            f"live-build {self.live_build_version}\n"
            f"  NVIDIA driver: {nvidia}\n"
            f"  SSH: {self.ssh_access}\n"
            "  The audit: /var/log/bee-audit.json (re-run: bee audit)\n"
        )


def parse_release(text: str) -> dict[str, str]:
    """KEY=VALUE pairs of a release file (the inverse of Release.render)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            parts = shlex.split(value)
            values[key] = parts[0] if parts else ""
    return values


def write_release(staging: Path, release: Release) -> None:
    """Staged /etc/bee-release and /etc/motd (the same facts, for people)."""
    etc = staging / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "bee-release").write_text(release.render(), encoding="utf-8")
    (etc / "motd").write_text(release.motd(), encoding="utf-8")
