"""Pins and their source: iso/builder/VERSIONS (versions), a private apt configuration for the
pinned mirror (aptrepo), the pinned kernel ABI checked against it (kernel).

Imports nothing else from buildtools.
"""
