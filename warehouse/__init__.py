"""wh: a SQL + Python feature warehouse for demand forecasting.

Python models register with `from warehouse.python_model import model`.
"""

from __future__ import annotations

__version__ = "0.1.0"
