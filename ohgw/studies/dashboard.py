"""Dashboard safety: a local Ray's dashboard binds to loopback unless the user says otherwise, token auth stays on.

>>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("0.0.0.0")
(True, True, False)
>>> check_dashboard_host("0.0.0.0")
Traceback (most recent call last):
...
ValueError: --dashboard-host 0.0.0.0 is not a loopback address: the dashboard would be reachable from the network; pass --allow-public-dashboard to bind it there anyway (keep token auth on)
"""

from __future__ import annotations

import os

AUTH_WARNING = ("warning: Ray token auth is disabled (RAY_AUTH_MODE=disabled): anyone who can reach the dashboard "
                "or the cluster's ports can run code as you; unset RAY_AUTH_MODE to keep token auth on")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) is on the loopback interface only."""
    import ipaddress

    h = host.strip().strip("[]")
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False  # another name, or 0.0.0.0's spellings: not provably loopback


def check_dashboard_host(host: str, allow_public: bool = False) -> None:
    """Refuse a non-loopback dashboard bind unless ``allow_public`` (``--allow-public-dashboard``).

    The dashboard runs jobs and shows logs; bound to 0.0.0.0 or an external address it is reachable
    from the network, protected by the token only (or by nothing with token auth disabled).
    """
    if not isinstance(host, str) or not host.strip():
        raise ValueError(f"--dashboard-host must be an address, got {host!r}")
    if not allow_public and not is_loopback(host):
        raise ValueError(f"--dashboard-host {host} is not a loopback address: the dashboard would be reachable from "
                         "the network; pass --allow-public-dashboard to bind it there anyway (keep token auth on)")


def auth_disabled() -> bool:
    """Whether Ray's token auth is switched off for this process (``RAY_AUTH_MODE=disabled``)."""
    return os.environ.get("RAY_AUTH_MODE", "token").strip().lower() == "disabled"


def dashboard_note(url: str) -> str:
    """The console line on the dashboard at ``url`` ("" when Ray started none) and how to log in.

    >>> dashboard_note("")
    'Ray dashboard: not running'
    """
    if not url:
        return "Ray dashboard: not running"
    url = url if url.startswith("http") else f"http://{url}"
    auth = os.environ.get("RAY_AUTH_MODE", "token")
    if auth == "disabled":
        return f"Ray dashboard: {url} (token auth disabled)"
    return (f"Ray dashboard: {url} (token auth: paste the token printed by `ray get-auth-token`, "
            f"stored in ~/.ray/auth_token; API calls need 'Authorization: Bearer <token>')")


__all__ = ["AUTH_WARNING", "auth_disabled", "check_dashboard_host", "dashboard_note", "is_loopback"]
