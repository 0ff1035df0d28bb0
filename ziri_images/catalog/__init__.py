"""The catalog: what can be generated and what it costs.

It owns pricing.json (``pricing.PriceBook``, its providers read by ``loading``, its checks for
operators in ``pricing_check``), each model's rules (``image_model`` with its ``tables`` and
``params``, ``sizes``, ``tokens``), the price of one request before it is sent (``quoting``)
and the catalog as a key sees it (``listing``, served by ``models.py``'s ``GET /v1/models``).
"""
