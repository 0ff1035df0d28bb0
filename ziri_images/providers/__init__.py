"""The providers: every outbound call to an image API goes through this package.

``base`` is the adapter interface every provider implements (``Provider.send``: a priced call in,
one ``ProviderResult`` or ``ProviderError`` out) and its types; ``openai.OpenAIProvider`` speaks
OpenAI's images API (OpenAI, Azure OpenAI, xAI and compatible servers); ``answers`` reads an
answer or a failure into a result or an error and redacts what must not leave it; ``streams``
relays a streamed answer event by event; ``deadline`` bounds each call in time and holds the
pooled ``Transport`` an adapter sends with; ``entries`` reads providers.json's document (which ``config.py`` reads once)
into entries, from which ``config`` builds the providers.
"""
