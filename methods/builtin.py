"""Imports every built-in method module so that its ``@register_method`` runs.

A new method family adds one import line here.
"""

from __future__ import annotations

import methods.cnn  # noqa: F401
import methods.sesn  # noqa: F401
import methods.dss  # noqa: F401
import methods.fourier  # noqa: F401
