"""Module signing for Secure Boot: keys with real openssl, signatures with the kernel's real
sign-file, checked with real modinfo and `openssl cms -verify`, on real NVIDIA modules.

The modules are the cache entries in dist/ (skipped when no build made them) or, failing
those, a module object compiled here with gcc (an ELF relocatable with a .modinfo section:
what modinfo and sign-file read). sign-file is the host's linux-kbuild one; the pinned
kernel's own (Debian 13's, which needs its glibc) runs in dist/buildroot-<release>/ as root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from buildtools.nvidia import signing
from buildtools.nvidia.buildroot import KernelBuildRoot
from buildtools.nvidia.cache import build_entry, load_entry
from buildtools.nvidia.steps import NvidiaError
from buildtools.pins.versions import REPO_ROOT, VersionsError, load_versions
from buildtools.runner import Runner

DIST = REPO_ROOT / "dist"
HOST_SIGN_FILES = sorted(Path("/usr/lib").glob("linux-kbuild-*/scripts/sign-file"))
HOST = KernelBuildRoot(root=None, release="")

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")
needs_signing = pytest.mark.skipif(
    not HOST_SIGN_FILES or not shutil.which("openssl") or not shutil.which("modinfo"),
    reason="needs the host's linux-kbuild sign-file, openssl and modinfo (kmod)",
)


@pytest.fixture
def log(tmp_path: Path) -> Runner:
    with Runner(tmp_path / "log") as runner:
        yield runner


def _real_modules() -> list[Path]:
    return sorted(DIST.glob("nvidia-*-open/modules/nvidia-drm.ko"))


@pytest.fixture
def module(tmp_path: Path) -> Path:
    """A real kernel module: NVIDIA's nvidia-drm.ko from dist/, else one compiled here."""
    real = _real_modules()
    dest = tmp_path / "nvidia-drm.ko"
    if real:
        shutil.copyfile(real[0], dest)
        return dest
    if shutil.which("gcc") is None:
        pytest.skip("no NVIDIA cache entry in dist/ and no gcc to compile a module object")
    source = tmp_path / "beetest.c"
    source.write_text(
        'static const char info[] __attribute__((section(".modinfo"), used)) =\n'
        '    "license=GPL\\0name=nvidia_drm\\0vermagic=6.12.118+deb13-amd64 SMP\\0";\n'
        "int beetest_init(void) { return 0; }\n"
    )
    subprocess.run(["gcc", "-c", "-o", dest, source], check=True)
    return dest


def _modinfo(path: Path, field: str) -> str:
    return subprocess.run(
        ["modinfo", "-F", field, path], capture_output=True, text=True, check=True
    ).stdout.strip()


def _key(work: Path, *, common_name: str, log: Runner) -> signing.SigningKey:
    # 2048 bits: the build's 4096-bit keys take seconds each on a loaded machine.
    return signing.generate_key(work, common_name=common_name, log=log, bits=2048)


def _check(module: Path, key: signing.SigningKey, tmp_path: Path, log: Runner) -> dict:
    return signing.check_signature(
        module, cert=key.cert, serial=key.serial, work=tmp_path / "check", log=log
    )


def _sign(module: Path, key: signing.SigningKey, log: Runner) -> None:
    signing.sign_modules(
        [module], key, hash_algo="sha256", sign_file=HOST_SIGN_FILES[-1], where=HOST, log=log
    )


# -- the trailer ---------------------------------------------------------------------------


def test_parse_signature_unsigned_truncated_and_garbage() -> None:
    assert signing.parse_signature(b"\x7fELF plain module") is None
    assert signing.parse_signature(signing.MAGIC) is None  # no room for the struct
    # sig_len larger than the file: a broken trailer, not a signature
    bogus = b"x" * 4 + signing._INFO.pack(0, 0, 2, 0, 0, 1 << 20) + signing.MAGIC
    assert signing.parse_signature(bogus) is None
    good = b"MODULE" + b"SIG" + signing._INFO.pack(0, 0, 2, 0, 0, 3) + signing.MAGIC
    parsed = signing.parse_signature(good)
    assert parsed is not None
    assert (parsed.content_length, parsed.signature, parsed.id_type) == (6, b"SIG", 2)


# -- keys ----------------------------------------------------------------------------------


@needs_openssl
def test_generated_key_is_a_code_signing_certificate(tmp_path: Path, log: Runner) -> None:
    key = _key(tmp_path / "k", common_name="bee module signing (t)", log=log)
    text = subprocess.run(
        ["openssl", "x509", "-in", key.cert, "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Code Signing" in text
    assert "CA:FALSE" in text
    assert "Digital Signature" in text
    assert "CN=bee module signing (t)" in key.subject
    assert oct(key.key.stat().st_mode & 0o777) == "0o600"
    der = subprocess.run(
        ["openssl", "x509", "-in", key.cert, "-outform", "DER"], capture_output=True, check=True
    ).stdout
    assert key.der == der
    assert len(key.sha256) == 64
    assert all(len(part) == 2 for part in key.serial.split(":"))
    # A second key is another identity.
    other = _key(tmp_path / "k2", common_name="bee module signing (t)", log=log)
    assert other.sha256 != key.sha256


@needs_openssl
def test_operator_key_accepted_as_pem_or_der(tmp_path: Path, log: Runner) -> None:
    made = _key(tmp_path / "made", common_name="fleet key", log=log)
    der = signing.write_cert(made, tmp_path / "out")[0]
    for cert in (made.cert, der):
        key = signing.describe_key(
            made.key, cert, origin="operator", work=tmp_path / f"w-{cert.suffix}", log=log
        )
        assert (key.sha256, key.serial, key.origin) == (made.sha256, made.serial, "operator")


@needs_openssl
def test_operator_key_errors_are_one_line(tmp_path: Path, log: Runner) -> None:
    one = _key(tmp_path / "one", common_name="one", log=log)
    two = _key(tmp_path / "two", common_name="two", log=log)
    with pytest.raises(NvidiaError, match="is not the private key of"):
        signing.describe_key(one.key, two.cert, origin="operator", work=tmp_path / "w1", log=log)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(NvidiaError, match=r"not an X\.509 certificate"):
        signing.describe_key(one.key, garbage, origin="operator", work=tmp_path / "w2", log=log)
    locked = tmp_path / "locked.pem"
    subprocess.run(
        ["openssl", "pkey", "-in", one.key, "-aes256", "-passout", "pass:secret", "-out", locked],
        check=True,
    )
    with pytest.raises(NvidiaError, match="without a passphrase"):
        signing.describe_key(locked, one.cert, origin="operator", work=tmp_path / "w3", log=log)


# -- signing a real module -----------------------------------------------------------------


@needs_signing
def test_signed_module_names_its_key_and_verifies(
    tmp_path: Path, log: Runner, module: Path
) -> None:
    key = _key(tmp_path / "k", common_name="bee module signing (t)", log=log)
    unsigned = module.read_bytes()
    assert signing.parse_signature(unsigned) is None
    assert _modinfo(module, "signer") == ""
    _sign(module, key, log)
    assert _modinfo(module, "signer") == "bee module signing (t)"
    assert _modinfo(module, "sig_key") == key.serial
    assert _modinfo(module, "sig_hashalgo") == "sha256"
    parsed = signing.parse_signature(module.read_bytes())
    assert parsed is not None
    assert parsed.content_length == len(unsigned)  # the module itself is not changed
    fields = _check(module, key, tmp_path, log)
    assert fields == {
        "signer": "bee module signing (t)",
        "sig_key": key.serial,
        "sig_hashalgo": "sha256",
    }

    # Another key's certificate: refused by serial before any cryptography.
    other = _key(tmp_path / "o", common_name="other", log=log)
    with pytest.raises(NvidiaError, match="signed by key"):
        _check(module, other, tmp_path, log)
    # One byte of the module changed: the signature no longer verifies.
    data = bytearray(module.read_bytes())
    data[100] ^= 0xFF
    module.write_bytes(bytes(data))
    with pytest.raises(NvidiaError, match="does not verify"):
        _check(module, key, tmp_path, log)


@needs_signing
def test_unsigned_module_is_not_taken_for_signed(tmp_path: Path, log: Runner, module: Path) -> None:
    key = _key(tmp_path / "k", common_name="k", log=log)
    with pytest.raises(NvidiaError, match="no PKCS#7 module signature"):
        _check(module, key, tmp_path, log)


# -- the signed cache entry ----------------------------------------------------------------


def _base_entry(tmp_path: Path, module: Path) -> object:
    final = tmp_path / "dist" / "nvidia-1.2.3-6.12.118+deb13-amd64-open"

    def fill(entry: Path) -> dict:
        (entry / "modules").mkdir()
        shutil.copyfile(module, entry / "modules" / "nvidia.ko")
        (entry / "bin").mkdir()
        (entry / "bin" / "nvidia-smi").write_bytes(b"\x7fELF smi")
        (entry / "lib").mkdir()
        (entry / "lib" / "libcuda.so.1.2.3").write_bytes(b"\x7fELF cuda")
        (entry / "lib" / "libcuda.so.1").symlink_to("libcuda.so.1.2.3")
        return {"version": "1.2.3", "flavour": "open", "modules": ["nvidia.ko"]}

    inputs = {"version": "1.2.3", "flavour": "open", "kernel_abi": "6.12.118+deb13-amd64"}
    return build_entry(final, inputs, fill)


@needs_signing
def test_signed_entry_is_keyed_by_the_certificate(
    tmp_path: Path, log: Runner, module: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The host's sign-file and hash stand in for the pinned kernel's (next test: the real one).
    monkeypatch.setattr(signing, "sign_file_path", lambda _abi: HOST_SIGN_FILES[-1])
    monkeypatch.setattr(signing, "kernel_sign_hash", lambda _abi, _where: "sha256")
    base = _base_entry(tmp_path, module)
    key = _key(tmp_path / "k", common_name="first", log=log)
    asked = []

    def where() -> KernelBuildRoot:
        asked.append(1)
        return HOST

    abi = "6.12.118+deb13-amd64"
    signed = signing.ensure_signed(base, key, kernel_abi=abi, where=where, log=log)
    assert not signed.cache_hit and asked == [1]
    assert signed.path.name == base.path.name + "-signed"
    assert signed.manifest["inputs"]["signing_cert_sha256"] == key.sha256
    assert signed.manifest["signing"]["cert_sha256"] == key.sha256
    assert signed.manifest["signing"]["modules"]["nvidia.ko"]["signer"] == "first"
    assert (signed.path / "module-signing.der").read_bytes() == key.der
    assert os.readlink(signed.path / "lib" / "libcuda.so.1") == "libcuda.so.1.2.3"
    ko = signed.path / "modules" / "nvidia.ko"
    assert _modinfo(ko, "sig_key") == key.serial
    assert (base.path / "modules" / "nvidia.ko").read_bytes() == module.read_bytes()

    # Same key, same modules: reused, and the build root is not even asked for.
    again = signing.ensure_signed(base, key, kernel_abi=abi, where=where, log=log)
    assert again.cache_hit and asked == [1]

    # Another key: a miss, signed again, and the entry now holds that key's signatures.
    other = _key(tmp_path / "o", common_name="second", log=log)
    assert load_entry(signed.path, signing.signed_inputs(base, other))[0] is None
    resigned = signing.ensure_signed(base, other, kernel_abi=abi, where=where, log=log)
    assert not resigned.cache_hit and asked == [1, 1]
    assert _modinfo(ko, "signer") == "second"

    # A rebuilt (changed) unsigned module is a miss too.
    changed = json.loads(json.dumps(base.manifest))
    changed["sha256"]["modules/nvidia.ko"] = "0" * 64
    rebuilt = type(base)(path=base.path, manifest=changed)
    assert load_entry(signed.path, signing.signed_inputs(rebuilt, other))[0] is None


def _build_root() -> Path | None:
    try:
        release = load_versions()["DEBIAN_RELEASE"]
    except VersionsError:  # no VERSIONS: no build root either
        return None
    root = DIST / f"buildroot-{release}"
    return root if root.is_dir() else None


@pytest.mark.skipif(
    os.geteuid() != 0 or _build_root() is None or not _real_modules(),
    reason="needs root, dist/buildroot-<release>/ and an NVIDIA cache entry (a build made them)",
)
@needs_openssl
def test_pinned_kernels_sign_file_in_the_build_root(tmp_path: Path, log: Runner) -> None:
    """Debian's own sign-file and CONFIG_MODULE_SIG_HASH of the pinned kernel, as the build
    runs them, on NVIDIA's real nvidia-drm.ko."""
    versions = load_versions()
    where = KernelBuildRoot(root=_build_root(), release=versions["DEBIAN_RELEASE"])
    abi = versions.kernel_abi
    assert signing.kernel_sign_hash(abi, where) == "sha256"
    key = _key(tmp_path / "k", common_name="bee module signing (root)", log=log)
    module = tmp_path / "nvidia-drm.ko"
    shutil.copyfile(_real_modules()[0], module)
    signing.sign_modules(
        [module],
        key,
        hash_algo="sha256",
        sign_file=signing.sign_file_path(abi),
        where=where,
        log=log,
    )
    assert not where.path("/bee-sign").exists()  # the key's copy went with the directory
    fields = _check(module, key, tmp_path, log)
    assert fields["signer"] == "bee module signing (root)"
    assert _modinfo(module, "vermagic").startswith(abi + " ")


@pytest.mark.skipif(
    not sorted(DIST.glob("nvidia-*-signed/manifest.json")) or not shutil.which("modinfo"),
    reason="no signed NVIDIA cache entry in dist/ (made by build_iso)",
)
@needs_openssl
def test_signed_entries_in_dist_verify(tmp_path: Path, log: Runner) -> None:
    """Every module of every signed entry a build left: modinfo names the entry's certificate
    and the signature verifies against it."""
    for manifest_path in sorted(DIST.glob("nvidia-*-signed/manifest.json")):
        entry = manifest_path.parent
        manifest = json.loads(manifest_path.read_text())
        signed = manifest["signing"]
        for name in manifest["modules"]:
            fields = signing.check_signature(
                entry / "modules" / name,
                cert=entry / "module-signing.pem",
                serial=signed["serial"],
                work=tmp_path / "check",
                log=log,
            )
            assert fields["sig_hashalgo"] == signed["hash"]
            assert fields == signed["modules"][name]
