"""Test-wide network guard: nothing in the test process may reach past this machine.

The product promises that nothing leaves the machine. In the test process every
IPv4/IPv6 ``connect``, ``connect_ex``, ``sendto`` and ``sendmsg`` to an address
outside loopback, and every name lookup other than ``localhost``, raises
:class:`NetworkBlocked` before any packet is sent. Unix sockets (and other
non-IP families) pass. So do the addresses of this machine's own interfaces
(the kernel delivers those over loopback too): tests/integration/test_serve.py
connects to them to prove that `slm serve` refuses them.

:class:`NetworkBlocked` is a RuntimeError, not an OSError, so code that reads an
OSError as "the server is down" cannot take it for one. Each attempt is also
recorded, and tests/conftest.py fails the test that made it even if some
``except Exception`` swallowed the error.

pytest-socket (a dependency of langchain-tests) restores ``socket.socket.connect``
and ``socket.getaddrinfo`` from its own saved originals after every test; the
guard hands it the guarded versions as those originals, so the two compose.
Subprocesses are not covered: tests/hardening/test_sealed_network.py runs the
commands in a network namespace with nothing but loopback instead.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from typing import Any

_INET = (socket.AF_INET, socket.AF_INET6)
_LOCAL_NAMES = ("localhost", "localhost.", "ip6-localhost", "ip6-loopback")

_lock = threading.Lock()
_blocked: list[str] = []
_real: dict[str, Any] = {}
_own: frozenset[str] | None = None
_SOCKET = socket.socket  # the class itself: pytest-socket may swap socket.socket for a subclass during a test


class NetworkBlocked(RuntimeError):
    """A test tried to reach an address past this machine (or to look a name up)."""


def is_loopback(host: object) -> bool:
    """True for 127.0.0.0/8, ::1 (also IPv4-mapped), and the name localhost."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    name = host.split("%", 1)[0].lower()
    if name in _LOCAL_NAMES or name.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or bool(mapped and mapped.is_loopback)


def _own_addresses() -> frozenset[str]:
    """The addresses of this machine's interfaces (read once)."""
    global _own
    if _own is None:
        import psutil  # the test extras have it

        _own = frozenset(a.address.split("%", 1)[0] for addrs in psutil.net_if_addrs().values()
                         for a in addrs if a.family in _INET)
    return _own


def is_local(host: object) -> bool:
    """Loopback, or an address of one of this machine's interfaces."""
    return is_loopback(host) or (isinstance(host, str) and host.split("%", 1)[0] in _own_addresses())


def _refuse(what: str) -> NetworkBlocked:
    with _lock:
        _blocked.append(what)
    return NetworkBlocked(f"the test tried to reach the network: {what} "
                          "(only loopback and this machine's own addresses are allowed)")


def take_blocked() -> list[str]:
    """The attempts blocked since the last call (and forget them)."""
    with _lock:
        out = list(_blocked)
        _blocked.clear()
    return out


def _check(sock: socket.socket, address: object, call: str) -> None:
    if sock.family in _INET and isinstance(address, tuple) and address and not is_local(address[0]):
        raise _refuse(f"{call}{address!r}")


def _connect(self: socket.socket, address: Any) -> None:
    try:
        _check(self, address, "connect")
    except NetworkBlocked:
        self.close()  # callers clean up after OSError only (socket.create_connection): do not leak the fd
        raise
    return _real["connect"](self, address)


def _connect_ex(self: socket.socket, address: Any) -> int:
    try:
        _check(self, address, "connect_ex")
    except NetworkBlocked:
        self.close()
        raise
    return int(_real["connect_ex"](self, address))


def _sendto(self: socket.socket, data: Any, *args: Any) -> int:
    _check(self, args[-1] if args else None, "sendto")
    return int(_real["sendto"](self, data, *args))


def _sendmsg(self: socket.socket, buffers: Any, ancdata: Any = (), flags: int = 0, address: Any = None) -> int:
    if address is not None:
        _check(self, address, "sendmsg")
        return int(_real["sendmsg"](self, buffers, ancdata, flags, address))
    return int(_real["sendmsg"](self, buffers, ancdata, flags))


def _lookup_allowed(host: object) -> bool:
    """Name lookups: IP literals (no query is sent), empty/None (bind addresses) and localhost."""
    if host is None or host in ("", b""):
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return True
    except ValueError:
        return is_loopback(host)


def _getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if not _lookup_allowed(host):
        raise _refuse(f"getaddrinfo({host!r})")
    return _real["getaddrinfo"](host, *args, **kwargs)


def _gethostbyname(host: Any) -> str:
    if not _lookup_allowed(host):
        raise _refuse(f"gethostbyname({host!r})")
    return str(_real["gethostbyname"](host))


def _gethostbyname_ex(host: Any) -> Any:
    if not _lookup_allowed(host):
        raise _refuse(f"gethostbyname_ex({host!r})")
    return _real["gethostbyname_ex"](host)


def _gethostbyaddr(host: Any) -> Any:
    if not is_loopback(host):  # a reverse lookup of any other address asks a DNS server
        raise _refuse(f"gethostbyaddr({host!r})")
    return _real["gethostbyaddr"](host)


_GUARDS = {"connect": _connect, "connect_ex": _connect_ex, "sendto": _sendto, "sendmsg": _sendmsg}
_LOOKUPS = {"getaddrinfo": _getaddrinfo, "gethostbyname": _gethostbyname, "gethostbyname_ex": _gethostbyname_ex,
            "gethostbyaddr": _gethostbyaddr}


def install() -> None:
    """Guard this process; again after anything put the real functions back."""
    if not _real:  # the originals, once
        _real.update({name: getattr(_SOCKET, name) for name in _GUARDS})
        _real.update({name: getattr(socket, name) for name in _LOOKUPS})
    for name, guard in _GUARDS.items():
        setattr(_SOCKET, name, guard)
    for name, guard in _LOOKUPS.items():
        setattr(socket, name, guard)
    try:
        import pytest_socket
    except ImportError:
        return
    # pytest-socket puts these back after each test, and its own guards call them.
    pytest_socket._true_connect = _connect  # type: ignore[assignment]
    pytest_socket._true_getaddrinfo = _getaddrinfo
    pytest_socket._true_gethostbyname = _gethostbyname


def installed() -> bool:
    """True while every entry point is the guard, or a pytest-socket guard that calls it."""
    current = [(getattr(_SOCKET, n), g) for n, g in _GUARDS.items()]
    current += [(getattr(socket, n), g) for n, g in _LOOKUPS.items()]
    return all(now is guard or getattr(now, "__module__", "") == "pytest_socket" for now, guard in current)
