"""Who is calling: the identity a bearer token stands for, and the authenticator interface.

The API framework declares both in ``ovsd.api.identity`` (its calls carry an Identity); they are the same
types here, so what ``ovsd.auth`` returns is exactly what the framework expects.
"""

from __future__ import annotations

from ovsd.api.identity import Authenticator, Identity

__all__ = ["Authenticator", "Identity"]
