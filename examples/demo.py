"""The demo behind ``make demo``: the e-commerce shop, end to end (``examples.shop.demo``).

python -m examples.demo --orders 1000 --workers 4
"""

from __future__ import annotations

from examples.shop.demo import main

if __name__ == "__main__":
    raise SystemExit(main())
