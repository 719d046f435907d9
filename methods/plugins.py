"""Third-party methods: the entry points that register them, loaded on the registry's first look-up.

A package adds methods by naming, in the entry-point group ``scaleqbench.methods``, a
module (or a callable) whose import registers them::

    [project.entry-points."scaleqbench.methods"]
    mynet = "mynet"

Packages written for the project's former name register in ``scalebench.methods``;
they still load, each with one warning naming the new group (an entry point listed
in both groups loads once, from the new one, without a warning).

Loading a plugin never ends the command that looks a method up: whatever its import
raises -- an exception, ``sys.exit()``, any ``BaseException`` but ``KeyboardInterrupt``
(the user's Ctrl-C still stops the command) -- is caught, one warning line says which
plugin failed and why, and the other plugins and the built-in methods stay usable.

While a plugin loads, :func:`loading_source` names its distribution and version: the
registry records it as the source of every method the plugin registers. A plugin
imported before the first look-up (by a script or its own tests) has registered its
methods already, under its module's name; the loader then hands the registry the
package and its source (``claim``) so that those methods carry the version too.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["ENTRY_POINT_GROUP", "LEGACY_ENTRY_POINT_GROUP", "load_plugins", "loading_source",
           "source_of"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "scaleqbench.methods"
#: the group of the project's former name, still read (with a warning per plugin)
LEGACY_ENTRY_POINT_GROUP = "scalebench.methods"

_loading: ContextVar[str | None] = ContextVar("scaleqbench_plugin_source", default=None)
#: legacy entry points already warned about: one warning per plugin and process, however
#: often the entry points are scanned again (reload_plugins)
_warned: set[tuple[str, str]] = set()


def loading_source() -> str | None:
    """The source of the plugin being loaded now (``"<distribution> <version>"``), else None."""
    return _loading.get()


def source_of(ep: importlib.metadata.EntryPoint) -> str:
    """``"<distribution> <version>"`` of the package that declares ``ep``; its module when the
    entry point comes from no installed distribution."""
    dist = getattr(ep, "dist", None)
    if dist is not None and dist.name:
        return f"{dist.name} {dist.version}"
    return ep.value.partition(":")[0]


def _entry_points() -> list[tuple[importlib.metadata.EntryPoint, bool]]:
    """Every method entry point, the new group's first, each with whether it is a legacy one."""
    current = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    seen = {(source_of(ep), ep.value) for ep in current}
    legacy = [ep for ep in importlib.metadata.entry_points(group=LEGACY_ENTRY_POINT_GROUP)
              if (source_of(ep), ep.value) not in seen]
    return [(ep, False) for ep in current] + [(ep, True) for ep in legacy]


@contextmanager
def _registering_as(source: str) -> Iterator[None]:
    token = _loading.set(source)
    try:
        yield
    finally:
        _loading.reset(token)


def _why(exc: BaseException) -> str:
    """What went wrong, on one line (a multi-line message is joined)."""
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r})"
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def _load(ep: importlib.metadata.EntryPoint) -> bool:
    """Import one plugin (and call it when it names a callable); a failure is one warning."""
    source = source_of(ep)
    try:
        with _registering_as(source):
            obj = ep.load()
            if callable(obj) and not isinstance(obj, types.ModuleType):
                obj()
        return True
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - SystemExit too: see the module docstring
        log.warning("could not load method plugin %r (%s, from %s): %s",
                    ep.name, ep.value, source, _why(exc))
        return False


def load_plugins(claim: Callable[[str, str], None] | None = None) -> None:
    """Import every plugin of both entry-point groups (the caller makes sure it runs once).

    After each plugin that loads, ``claim(package, source)`` is called with the top-level
    package of its entry point and its ``"<distribution> <version>"``.
    """
    importlib.invalidate_caches()
    for ep, legacy in _entry_points():
        key = (source_of(ep), ep.value)
        if legacy and key not in _warned:
            _warned.add(key)
            log.warning("method plugin %r (%s, from %s) registers in the entry-point group %r, "
                        "which is deprecated: declare it under [project.entry-points.\"%s\"]",
                        ep.name, ep.value, key[0], LEGACY_ENTRY_POINT_GROUP, ENTRY_POINT_GROUP)
        if _load(ep) and claim is not None:
            claim(ep.value.partition(":")[0].split(".")[0], source_of(ep))
