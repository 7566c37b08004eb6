"""The ISO: the staged overlay and build information (staging), live-build into dist/
(build_iso), and the same inside a privileged container (container, Containerfile).

May import buildtools.pins and buildtools.nvidia.
"""
