"""Public: the e-commerce example service: orders, payments, inventory, shipping, customers.

The origin document's case, built only on the toolkit's public API:

* ``events``: 23 event types (``shop.*``) across five aggregates;
* ``aggregates``: ``Customer``, ``Order``, ``Payment``, ``InventoryItem``,
  ``Shipment`` with their business rules;
* ``commands`` + ``handlers``: the commands and the ``CommandBus`` that runs them;
* ``models``: the read models, ordinary SQLAlchemy ORM classes on ``Base``;
* ``projections``: read-model projections, process managers that dispatch
  commands, and an idempotent notification outbox;
* ``queries``: the query side;
* ``workload``: a realistic burst of orders; ``demo``: what ``make demo`` runs.

    >>> from examples.shop.handlers import build_bus
    >>> bus = build_bus()
"""
