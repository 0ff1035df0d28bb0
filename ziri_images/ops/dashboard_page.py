"""Draw the spend dashboard and its login form as self-contained HTML (inline CSS, server-drawn SVG).

The HTML is in ``ops/templates/`` (``dashboard.html``, ``dashboard_login.html``, both extending
``dashboard_base.html``), loaded by Flask's ``render_template`` from the dashboard blueprint's
template folder. Every value is escaped by Jinja's autoescaping, which Flask turns on for
``.html`` templates (a key id or user could hold markup); this module computes the chart's geometry.
"""

from flask import render_template

CHART_WIDTH = 720
CHART_HEIGHT = 200
CHART_TOP = 10
CHART_BOTTOM = 24  # room for the day labels
BAR_COLOUR = "#2563eb"
# Apart from the chart's blue: the browser test counts the chart's pixels by colour.
KEY_COLOUR = "#7c3aed"
MODEL_COLOUR = "#0d9488"
SPARK_WIDTH = 240
SPARK_HEIGHT = 24


def spend_chart(daily):
    """Return the bars of the daily spend chart: one per day, scaled to the highest day."""
    peak = max((cost for _day, cost in daily), default=0.0)
    base = CHART_HEIGHT - CHART_BOTTOM
    usable = base - CHART_TOP
    slot = CHART_WIDTH / max(len(daily), 1)
    bars = []
    for index, (day, cost) in enumerate(daily):
        height = round(usable * cost / peak, 1) if peak > 0 else 0.0
        bars.append({"day": day, "cost": cost, "x": round(index * slot + 1, 1), "width": round(slot - 2, 1),
                     "y": round(base - height, 1), "height": height,
                     "label": day[5:] if index % 5 == 0 else ""})
    return {"bars": bars, "peak": peak, "width": CHART_WIDTH, "height": CHART_HEIGHT, "base": base, "top": CHART_TOP}


def sparkline(days):
    """Return one row's small bar chart: a bar per day that spent, scaled to the row's highest day."""
    peak = max((cost for _day, cost in days), default=0.0)
    slot = SPARK_WIDTH / max(len(days), 1)
    bars = [{"day": day, "cost": cost, "x": round(index * slot, 1), "width": round(max(slot - 1, 1), 1),
             "y": round(SPARK_HEIGHT * (1 - cost / peak), 1), "height": round(SPARK_HEIGHT * cost / peak, 1)}
            for index, (day, cost) in enumerate(days) if cost > 0]
    return {"bars": bars, "width": SPARK_WIDTH, "height": SPARK_HEIGHT}


def render_dashboard(overview):
    """Return the dashboard's HTML for ``overview`` (``dashboard.spend_overview``)."""
    return render_template("dashboard.html", colour=BAR_COLOUR, chart=spend_chart(overview["daily"]),
                           key_colour=KEY_COLOUR, model_colour=MODEL_COLOUR, sparkline=sparkline, **overview)


def render_login(nonce, error=None):
    """Return the sign-in form's HTML, carrying the CSRF ``nonce`` and the last attempt's ``error``."""
    return render_template("dashboard_login.html", nonce=nonce, error=error)
