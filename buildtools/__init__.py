"""bee's builder: runs on the build host through nox, never on the image.

One package per subsystem; each imports only the ones named in brackets:

- pins/    the pins in iso/builder/VERSIONS and the Debian mirror that serves them (none)
- nvidia/  NVIDIA kernel modules and user space for the pinned kernel, and their cache (pins)
- image/   the ISO: staging the overlay, live-build, the container wrapper (pins, nvidia)
- vm/      the QEMU test server and what the booted image must show (none; runs build_iso)
- bench/   the audit benchmark on a synthetic big GPU server (none)

Shared by all of them (and importing none): runner.py, the one way to run a host command (a
timeout, output streamed to the log, a progress line per step, one error shape),
hosttools.py, every host program with its Debian package, checked and installed per session,
and initramfs.py, the busybox initramfs of a bare-kernel QEMU boot (the NVIDIA boot check, the
fixture capture scripts).

docs/architecture.md shows how data flows through them.
"""
