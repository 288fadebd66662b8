"""Small helpers the account tests share: what a phone's authenticator app would show right now."""

from __future__ import annotations

from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice


def totp_now(device: TOTPDevice, *, offset_steps: int = 0) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift + offset_steps)
    return f"{totp.token():0{device.digits}d}"


def totp_wrong(device: TOTPDevice) -> str:
    """A well-formed code no clock drift could make right (not the previous, current or next one)."""
    near = {totp_now(device, offset_steps=n) for n in range(-2, 3)}
    return next(f"{n:06d}" for n in range(123456, 1_000_000) if f"{n:06d}" not in near)
