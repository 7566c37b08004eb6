"""Netboot: the ISO's kernel, initrd and squashfs laid out for PXE/iPXE and HTTP (artefacts),
and the HTTP server plus QEMU bridge the netboot VM test serves them with (serve).

May import buildtools.runner, buildtools.hosttools, buildtools.pins (REPO_ROOT) and
buildtools.vm (the ISO menu parser).
"""
