"""Development aids: a local stand-in for the providers, never part of a production request.

``stub`` answers OpenAI's image endpoints with small generated PNGs (prompt directives set
delays, errors and usage), so the gateway, its tests and the benchmarks run without a network;
``stub_stream`` writes its streamed answers, ``stub_usage`` counts the tokens they report and
``stub_tokens`` counts an upload's image tokens (OpenAI's formula stated again, so a mistake in
the gateway's shows). ``stub_google`` answers Google's ``generateContent`` (the Gemini API and
Vertex AI) and its token endpoint, ``stub_gemini`` writes those answers (Google's token figures
stated again); ``stub_credentials`` is what ``ziri-images dev`` gives a provider it sends there.
"""
