"""The image-input tokens the stub reports for an edit's uploads, stated here and not taken from the gateway.

The stub stands in for OpenAI: if it counted with the gateway's own formula
(``catalog/quoting.py``), an error there would be answered back by the stub and no test could
see it. So the count is written again from OpenAI's description: an input image is fitted
within 2048x2048, then counted in 512-pixel tiles, 85 tokens plus 170 a tile. OpenAI publishes
no figure for high input fidelity's extra tokens; the stub reports the gateway's allowance.
A test holds the two statements together over examples.
"""

import math

FIT_PIXELS = 2048
TILE_PIXELS = 512
BASE_TOKENS = 85
TILE_TOKENS = 170
HIGH_FIDELITY_TOKENS = 6_000


def image_input_tokens(width, height, fidelity):
    """Return the image-input tokens OpenAI reports for one ``width``x``height`` image at ``fidelity``."""
    scale = min(1.0, FIT_PIXELS / max(width, height))
    fitted_width, fitted_height = max(1, round(width * scale)), max(1, round(height * scale))
    tiles = math.ceil(fitted_width / TILE_PIXELS) * math.ceil(fitted_height / TILE_PIXELS)
    return BASE_TOKENS + TILE_TOKENS * tiles + (HIGH_FIDELITY_TOKENS if fidelity == "high" else 0)
