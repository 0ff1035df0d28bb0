"""The providers: every outbound call to an image API goes through this package.

``openai.OpenAIProvider`` speaks OpenAI's images API (OpenAI, Azure OpenAI, xAI and compatible
servers); ``answers`` reads a provider's answer or failure into a result or an ``ApiError`` and
redacts what must not leave it; ``streams`` relays a streamed answer event by event; ``entries``
reads providers.json's document (which ``config.py`` reads once) into entries, from which ``config``
builds the providers; ``deadline`` bounds each call in time.
"""
