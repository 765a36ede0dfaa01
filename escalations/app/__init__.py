"""The application layer: the ``escalations`` command (``cli``, ``commands``), the one place
that wires settings to an adapter, a binding and a store (``wiring``), logging set-up
(``logs``) and the demo. It may import every other layer; nothing imports it."""
