"""The audit benchmark: a synthetic big GPU server (bighost) and `nox -s bench` (bench).

Imports nothing else from buildtools (it reads build_iso's step times from the build log).
"""
