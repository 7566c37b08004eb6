"""MAC addresses as every source spells them, in one normal form: lower case, colons."""

from __future__ import annotations

_HEX = frozenset("0123456789abcdef")


def normalize_mac(text: str | None) -> str | None:
    """'52:54:00:BE:E0:01', '52-54-00-be-e0-01' -> '52:54:00:be:e0:01'.

    6 to 20 octets (InfiniBand hardware addresses have 20). None for anything else, and for an
    all-zero address, which is what virtual devices report instead of a permanent one.
    """
    if not text:
        return None
    value = text.strip().lower().replace("-", ":")
    octets = value.split(":")
    if not 6 <= len(octets) <= 20:
        return None
    if any(len(octet) != 2 or not set(octet) <= _HEX for octet in octets):
        return None
    if all(octet == "00" for octet in octets):
        return None
    return ":".join(octets)


def mac_from_octets(data: bytes) -> str | None:
    """Six raw octets (an LLDP chassis or port id of subtype MAC) as a normal MAC."""
    if len(data) != 6:
        return None
    return normalize_mac(":".join(f"{b:02x}" for b in data))
