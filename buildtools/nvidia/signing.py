"""Sign the NVIDIA modules so that a kernel under Secure Boot will load them (docs/secure-boot.md).

Debian's kernel booted with Secure Boot locks itself down (integrity) and then loads only
modules whose signature it can check against a key it trusts: the keys built into it, and the
shim's MOK list (the .machine keyring: CONFIG_INTEGRITY_MACHINE_KEYRING, without the CA-only
restriction in Debian's 6.12). The image's modules are therefore signed at build time with the
kernel's own `scripts/sign-file` (Debian's linux-kbuild for the pinned kernel, run where make
runs: the host or the build root), with the hash the kernel names (CONFIG_MODULE_SIG_HASH), and
an X.509 key that is either

- made by the build (`per-build`): a fresh RSA key whose private half is deleted as soon as the
  modules are signed, so nothing else can ever be signed with it; or
- the operator's (`build_iso --module-signing-key KEY --module-signing-cert CERT`): one stable
  key, enrolled once per fleet and reused by every build.

The certificate ships on the image (/usr/local/lib/nvidia/module-signing.der and .pem) and
beside the ISO in dist/, for `mokutil --import`.

Signed modules are cached per flavour in `dist/nvidia-<v>-<kver>-<flavour>-signed/`: the
unsigned entry's other files hard-linked, its modules signed and checked (each signature
verified against the certificate with `openssl cms -verify`, and modinfo's sig_key must be the
certificate's serial), the certificate beside them as module-signing.der and .pem. The entry's
inputs are the unsigned entry's inputs, the sha256 of its modules and the certificate's sha256,
so another key (or a rebuilt module) signs again and the same operator key reuses the entry.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from buildtools.nvidia.buildroot import KernelBuildRoot
from buildtools.nvidia.cache import NvidiaBuild, build_entry, load_entry
from buildtools.nvidia.kbuild import headers_dir, kernel_config
from buildtools.nvidia.steps import NvidiaError
from buildtools.runner import CommandError, Runner

# The trailer sign-file appends (include/linux/module_signature.h): the PKCS#7 signature, a
# 12-byte struct module_signature (algo, hash, id_type, signer_len, key_id_len, pad[3], be32
# sig_len), then this magic.
MAGIC = b"~Module signature appended~\n"
_INFO = struct.Struct(">BBBBBxxxI")
PKEY_ID_PKCS7 = 2
CERT_STEM = "module-signing"  # /usr/local/lib/nvidia/module-signing.der, .pem
# As the kernel makes its own signing key (certs/default_x509.genkey), with codeSigning added:
# what shim's MokManager and the kernel's keyrings accept for a module-signing key.
_GENKEY = """[ req ]
default_bits = {bits}
distinguished_name = req_distinguished_name
prompt = no
string_mask = utf8only
x509_extensions = exts
[ req_distinguished_name ]
O = bee
CN = {common_name}
[ exts ]
basicConstraints = critical,CA:FALSE
keyUsage = digitalSignature
extendedKeyUsage = codeSigning
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class SigningKey:
    """A key to sign modules with, and what identifies it."""

    key: Path  # the private key, PEM (per-build: deleted with its directory after signing)
    cert: Path  # the certificate, PEM
    origin: str  # "per-build" or "operator"
    subject: str  # "O=bee, CN=bee module signing (per-build, 2026-12-01T12:00:00Z)"
    serial: str  # "71:84:09:...": what `modinfo -F sig_key` prints for a module it signed
    sha256: str  # of the DER certificate: the key's identity in the cache and in the docs
    der: bytes  # the certificate, DER (what mokutil --import takes)
    pem: str

    def describe(self) -> dict[str, str]:
        return {
            "origin": self.origin,
            "subject": self.subject,
            "serial": self.serial,
            "cert_sha256": self.sha256,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ModuleSignature:
    """The trailer of a signed module file."""

    content_length: int  # the module without its signature
    signature: bytes  # PKCS#7, DER
    id_type: int


def parse_signature(data: bytes) -> ModuleSignature | None:
    """The appended signature of a module file; None when it carries none (or a broken one)."""
    if not data.endswith(MAGIC) or len(data) < len(MAGIC) + _INFO.size:
        return None
    end = len(data) - len(MAGIC) - _INFO.size
    _algo, _hash, id_type, _signer, _key_id, sig_len = _INFO.unpack_from(data, end)
    if sig_len == 0 or sig_len > end:
        return None
    return ModuleSignature(
        content_length=end - sig_len, signature=data[end - sig_len : end], id_type=id_type
    )


def _openssl(log: Runner, *args: str | os.PathLike[str], check: bool = True) -> str:
    return log.run(["openssl", *args], timeout_s=300, check=check).stdout


def _serial(hex_digits: str) -> str:
    """openssl's `serial=7184...DA` as modinfo prints sig_key: `71:84:...:DA`."""
    digits = hex_digits.strip().upper()
    digits = "0" * (len(digits) % 2) + digits
    return ":".join(digits[i : i + 2] for i in range(0, len(digits), 2))


def _same_serial(sig_key: str, serial: str) -> bool:
    # DER pads an integer whose top bit is set with 00; modinfo shows the bytes as stored.
    return sig_key.upper().removeprefix("00:") == serial.upper().removeprefix("00:")


def describe_key(key: Path, cert: Path, *, origin: str, work: Path, log: Runner) -> SigningKey:
    """Read `cert` (PEM or DER), check that `key` is its private key; copies both into `work`."""
    work.mkdir(parents=True, exist_ok=True)
    pem, der = work / f"{CERT_STEM}.pem", work / f"{CERT_STEM}.der"
    for form in ("PEM", "DER"):
        result = log.run(
            ["openssl", "x509", "-inform", form, "-in", cert, "-outform", "PEM", "-out", pem],
            timeout_s=60,
            check=False,
        )
        if result.code == 0:
            break
    else:
        raise NvidiaError(f"module signing certificate {cert}: not an X.509 certificate")
    _openssl(log, "x509", "-in", pem, "-outform", "DER", "-out", der)
    private = work / "signing-key.pem"
    result = log.run(
        ["openssl", "pkey", "-in", key, "-passin", "pass:", "-out", private],
        timeout_s=60,
        check=False,
    )
    if result.code != 0:
        raise NvidiaError(
            f"module signing key {key}: not a private key openssl can read without a "
            "passphrase (sign-file cannot ask for one)"
        )
    private.chmod(0o600)
    from_key = _openssl(log, "pkey", "-in", private, "-pubout")
    from_cert = _openssl(log, "x509", "-in", pem, "-noout", "-pubkey")
    if from_key.strip() != from_cert.strip():
        raise NvidiaError(f"module signing key {key} is not the private key of {cert}")
    fields = _openssl(
        log, "x509", "-in", pem, "-noout", "-serial", "-subject", "-nameopt", "RFC2253"
    )
    values = dict(line.partition("=")[::2] for line in fields.splitlines() if "=" in line)
    data = der.read_bytes()
    return SigningKey(
        key=private,
        cert=pem,
        origin=origin,
        subject=values.get("subject", "").strip(),
        serial=_serial(values.get("serial", "")),
        sha256=hashlib.sha256(data).hexdigest(),
        der=data,
        pem=pem.read_text(encoding="ascii"),
    )


def generate_key(work: Path, *, common_name: str, log: Runner, bits: int = 4096) -> SigningKey:
    """A fresh per-build RSA key and self-signed certificate in `work` (delete `work` after)."""
    work.mkdir(parents=True, exist_ok=True)
    config = work / "x509.genkey"
    config.write_text(_GENKEY.format(common_name=common_name, bits=bits), encoding="utf-8")
    key, cert = work / "generated-key.pem", work / "generated-cert.pem"
    old = os.umask(0o077)
    try:
        _openssl(
            log,
            *("req", "-new", "-nodes", "-utf8", "-sha256", "-days", "36500", "-batch", "-x509"),
            *("-config", config, "-keyout", key, "-out", cert),
        )
    finally:
        os.umask(old)
    return describe_key(key, cert, origin="per-build", work=work, log=log)


def write_cert(key: SigningKey, directory: Path, stem: str = CERT_STEM) -> list[Path]:
    """<stem>.der and <stem>.pem in `directory` (the image's, or dist/ beside the ISO)."""
    directory.mkdir(parents=True, exist_ok=True)
    der, pem = directory / f"{stem}.der", directory / f"{stem}.pem"
    der.write_bytes(key.der)
    pem.write_text(key.pem, encoding="ascii")
    for path in (der, pem):
        path.chmod(0o644)
    return [der, pem]


def kernel_sign_hash(kernel_abi: str, where: KernelBuildRoot) -> str:
    """CONFIG_MODULE_SIG_HASH of the pinned kernel ("sha256" for Debian's)."""
    value = kernel_config(kernel_abi, where).get("CONFIG_MODULE_SIG_HASH", "").strip('"')
    if not value:
        raise NvidiaError(f"kernel {kernel_abi} has no CONFIG_MODULE_SIG_HASH: module signing off?")
    return value


def sign_file_path(kernel_abi: str) -> Path:
    """The kernel's sign-file as seen where make runs (Debian: a link into linux-kbuild)."""
    return headers_dir(kernel_abi) / "scripts" / "sign-file"


def sign_modules(
    modules: list[Path],
    key: SigningKey,
    *,
    hash_algo: str,
    sign_file: Path,
    where: KernelBuildRoot,
    log: Runner,
) -> None:
    """Sign `modules` in place with `sign_file` (a path where make runs), `hash_algo`."""
    if not where.path(sign_file).exists():
        raise NvidiaError(f"no {sign_file} (linux-kbuild of the pinned kernel) to sign modules")
    if where.root is None:
        for module in modules:
            log.run([sign_file, hash_algo, key.key, key.cert, module], timeout_s=300)
        return
    # In a build root the files are copied in (sign-file runs under chroot) and back out; the
    # copy of the private key goes with the directory.
    inside = Path("/bee-sign")
    tree = where.path(inside)
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(mode=0o700)
    try:
        shutil.copyfile(key.key, tree / "key.pem")
        shutil.copyfile(key.cert, tree / "cert.pem")
        for module in modules:
            shutil.copyfile(module, tree / module.name)
            log.run(
                where.argv(
                    [
                        str(sign_file),
                        hash_algo,
                        str(inside / "key.pem"),
                        str(inside / "cert.pem"),
                        str(inside / module.name),
                    ]
                ),
                env=where.env,
                timeout_s=300,
            )
            shutil.copyfile(tree / module.name, module)
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def check_signature(
    module: Path, *, cert: Path, serial: str, work: Path, log: Runner
) -> dict[str, str]:
    """The module's appended signature verifies against `cert` (PEM), and modinfo names its
    `serial` as sig_key; returns modinfo's signer, sig_key and sig_hashalgo."""
    data = module.read_bytes()
    signature = parse_signature(data)
    if signature is None or signature.id_type != PKEY_ID_PKCS7:
        raise NvidiaError(f"{module.name}: no PKCS#7 module signature appended")
    fields = {
        name: log.run(["modinfo", "-F", name, module], timeout_s=60).stdout.strip()
        for name in ("signer", "sig_key", "sig_hashalgo")
    }
    if not _same_serial(fields["sig_key"], serial):
        raise NvidiaError(f"{module.name}: signed by key {fields['sig_key'] or '?'}, not {serial}")
    work.mkdir(parents=True, exist_ok=True)
    sig, content = work / f"{module.name}.p7s", work / f"{module.name}.content"
    sig.write_bytes(signature.signature)
    content.write_bytes(data[: signature.content_length])
    try:
        _openssl(
            log,
            *("cms", "-verify", "-binary", "-inform", "DER", "-in", sig, "-content", content),
            *("-certfile", cert, "-nointern", "-noverify", "-out", work / "verified"),
        )
    except CommandError as exc:
        raise NvidiaError(f"{module.name}: its signature does not verify: {exc}") from None
    finally:
        for path in (sig, content, work / "verified"):
            path.unlink(missing_ok=True)
    return fields


def signed_dir(unsigned: Path) -> Path:
    return unsigned.with_name(unsigned.name + "-signed")


def signed_inputs(base: NvidiaBuild, key: SigningKey) -> dict[str, Any]:
    digests = base.manifest.get("sha256") or {}
    return {
        **(base.manifest.get("inputs") or {}),
        "unsigned_modules_sha256": {
            rel: digest for rel, digest in sorted(digests.items()) if rel.startswith("modules/")
        },
        "signing_cert_sha256": key.sha256,
    }


def _link_or_copy(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


def ensure_signed(
    base: NvidiaBuild,
    key: SigningKey,
    *,
    kernel_abi: str,
    where: Callable[[], KernelBuildRoot],
    log: Runner,
) -> NvidiaBuild:
    """The signed entry beside `base`: reused when it holds these modules signed by this key,
    else made (`where()` is asked only then: it may have to prepare the build root)."""
    final = signed_dir(base.path)
    inputs = signed_inputs(base, key)
    entry, _why = load_entry(final, inputs)
    if entry is not None:
        return entry
    place = where()
    hash_algo = kernel_sign_hash(kernel_abi, place)

    def fill(tmp: Path) -> dict[str, Any]:
        for rel in base.manifest.get("sha256") or {}:
            if not rel.startswith("modules/"):
                _link_or_copy(base.path / rel, tmp / rel)
        for rel, target in (base.manifest.get("symlinks") or {}).items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).symlink_to(target)
        write_cert(key, tmp)  # the certificate travels with the modules it verifies
        (tmp / "modules").mkdir(exist_ok=True)
        modules = [tmp / "modules" / name for name in base.manifest["modules"]]
        for module in modules:
            shutil.copyfile(base.path / "modules" / module.name, module)
        sign_modules(
            modules,
            key,
            hash_algo=hash_algo,
            sign_file=sign_file_path(kernel_abi),
            where=place,
            log=log,
        )
        checked = {
            module.name: check_signature(
                module, cert=key.cert, serial=key.serial, work=tmp / ".check", log=log
            )
            for module in modules
        }
        shutil.rmtree(tmp / ".check")
        fields = {
            name: value
            for name, value in base.manifest.items()
            if name not in ("cache_format", "inputs", "sha256", "symlinks")
        }
        fields["signing"] = {
            **key.describe(),
            "hash": hash_algo,
            "tool": f"{sign_file_path(kernel_abi)} ({place.root or 'host'})",
            "signed_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "modules": checked,
        }
        return fields

    return build_entry(final, inputs, fill)
