"""NVIDIA modules and user space for the pinned kernel: sources (Debian packages or the .run
installer), the kernel module build (kbuild), the cache in dist/ (cache), the build steps and
their log (steps), `python3 -m buildtools.nvidia.build`, and the QEMU insmod check (bootcheck).

May import buildtools.pins.
"""
