"""The NVIDIA build's error. Commands, their log and the progress lines are buildtools.runner's."""

from __future__ import annotations


class NvidiaError(Exception):
    """A build step failed; the message is one line meant for the person running the build."""
