"""Patches applied when their library is imported, not before: `instrument()` imports no SDK itself.

Importing every installed LLM SDK up front cost an application that uses one of them 2-5 s of start-up
and about 280,000 objects more for every full garbage collection to walk (120 ms pauses in a proxy
under load). A `PendingImports` runs each patch at once when its module is already imported, or from
wrapt's post-import hook when the application imports it later. `unpatch()` (llmlens's
`uninstrument()`) turns the hooks that have not fired yet into no-ops: wrapt cannot remove them.

Example:
    >>> pending = PendingImports()
    >>> pending.when_imported("openai", lambda: patch_openai())   # now, or on `import openai`
    >>> pending.unpatch()                                          # hooks still waiting do nothing
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from wrapt import register_post_import_hook

_log = logging.getLogger("llmlens")


class PendingImports:
    """The patches of one `instrument()` that wait for (or have had) their module's import."""

    def __init__(self) -> None:
        # No lock around a patch: it imports, and a lock held across imports can deadlock with another
        # thread's import. An `uninstrument()` racing an import in another thread may so leave that
        # one SDK patched.
        self.active = True

    def when_imported(self, module_name: str, apply: Callable[[], None]) -> None:
        """Run `apply` now if `module_name` is imported, else right after it is. `apply` logs its own
        failures; anything that escapes it is logged here and never reaches the importing code."""
        if module_name in sys.modules:
            self._run(apply, module_name)
            return

        def hook(module: Any) -> None:
            self._run(apply, module_name)

        register_post_import_hook(hook, module_name)

    def _run(self, apply: Callable[[], None], module_name: str) -> None:
        if not self.active:
            return
        try:
            apply()
        except Exception:
            _log.debug("llmlens: patching on import of %s failed", module_name, exc_info=True)

    def unpatch(self) -> None:
        self.active = False
