"""The VM test: tests/vm/hardware.toml as QEMU arguments (qemu), the BMC's FRU and SDR images
(fru), what the booted image must show (checks), and `nox -s vm_test` itself (vm_test).

Imports nothing else from buildtools but buildtools.netboot (--netboot serves its artefacts):
without --iso, vm_test runs buildtools.image.build_iso as a command.
"""
