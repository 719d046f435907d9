"""Imports every built-in method module so that its ``@register_method`` runs.

A new method family adds one import line here.
"""

from __future__ import annotations

import scalebench.methods.cnn  # noqa: F401
import scalebench.methods.sesn  # noqa: F401
import scalebench.methods.dss  # noqa: F401
import scalebench.methods.fourier  # noqa: F401
import scalebench.methods.sevf  # noqa: F401
import scalebench.methods.ss_cnn  # noqa: F401
