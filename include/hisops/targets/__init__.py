"""How hisops reaches things: PostgreSQL sessions and a command runner (local or SSH).

Imports no capability module; capabilities import this.
"""

from hisops.targets.errors import TargetUnreachable

__all__ = ["TargetUnreachable"]
