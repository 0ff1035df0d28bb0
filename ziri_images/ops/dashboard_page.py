"""Draw the spend dashboard and its login form as self-contained HTML (inline CSS, server-drawn SVG).

Every value is escaped by Jinja's autoescaping (a key id or user could hold markup).
"""

from flask import render_template_string

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

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#111;background:#fff}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:24px 0 8px}
table{border-collapse:collapse} td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.meter{width:100px;height:10px;background:#e5e7eb;display:inline-block;vertical-align:middle}
.meter span{display:block;height:10px;background:#16a34a} .meter span.hot{background:#dc2626}
.muted{color:#666} .error{color:#b91c1c}
"""

_DASHBOARD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ziri-images: spend</title><style>{{ style }}</style></head>
<body>
{% macro period(usage) %}<td class="n">${{ "%.4f"|format(usage.spent) }}</td>
<td class="n">${{ "%.4f"|format(usage.reserved) }}</td>
<td class="n">{% if usage.limit %}${{ "%.2f"|format(usage.limit) }}{% else %}none{% endif %}</td>
<td>{% if usage.limit %}{% set used = ((usage.spent + usage.reserved) / usage.limit) %}
<span class="meter" title="{{ '%.0f'|format(used * 100) }}%"><span class="{{ 'hot' if used >= 0.9 }}"
 style="width:{{ '%.1f'|format([used, 1]|min * 100) }}%"></span></span> {{ '%.0f'|format(used * 100) }}%
{% else %}<span class="muted">unlimited</span>{% endif %}</td>{% endmacro %}
{% macro over_time(id, title, what, series, colour) %}
<h2>{{ title }}, last {{ daily|length }} days (USD)</h2>
<table id="{{ id }}"><tr><th>{{ what }}</th><th>{{ daily|length }} days</th>
<th>per day (each row to its own peak)</th></tr>
{% for name, total, days in series.rows %}<tr><td>{{ name }}</td><td class="n">${{ "%.4f"|format(total) }}</td>
<td>{% set line = sparkline(days) %}<svg class="spark" xmlns="http://www.w3.org/2000/svg" width="{{ line.width }}"
 height="{{ line.height }}" role="img" aria-label="{{ title }}: {{ name }}">
<line x1="0" y1="{{ line.height }}" x2="{{ line.width }}" y2="{{ line.height }}" stroke="#ccc"/>
{% for bar in line.bars %}<rect class="spark" x="{{ bar.x }}" y="{{ bar.y }}" width="{{ bar.width }}"
 height="{{ bar.height }}" fill="{{ colour }}"><title>{{ bar.day }}: ${{ "%.4f"|format(bar.cost) }}</title></rect>
{% endfor %}</svg></td></tr>
{% else %}<tr><td colspan="3" class="muted">no spend yet</td></tr>{% endfor %}
{% if series.more %}<tr><td colspan="3" class="muted">and {{ series.more }} more</td></tr>{% endif %}
</table>{% endmacro %}
<h1>ziri-images spend</h1>
<p class="muted">As of {{ now.strftime("%Y-%m-%d %H:%M UTC") }}. Read-only.</p>
<h2>Spend per day, last {{ daily|length }} days (USD)</h2>
<svg id="spend-chart" xmlns="http://www.w3.org/2000/svg" width="{{ chart.width }}" height="{{ chart.height }}"
     role="img" aria-label="Spend per day">
  <line x1="0" y1="{{ chart.base }}" x2="{{ chart.width }}" y2="{{ chart.base }}" stroke="#999"/>
  {% for bar in chart.bars %}<rect class="bar" x="{{ bar.x }}" y="{{ bar.y }}" width="{{ bar.width }}"
    height="{{ bar.height }}" fill="{{ colour }}"><title>{{ bar.day }}: ${{ "%.4f"|format(bar.cost) }}</title></rect>
  {% if bar.label %}<text x="{{ bar.x }}" y="{{ chart.height - 6 }}" font-size="10" fill="#444">{{ bar.label }}
  </text>{% endif %}
  {% endfor %}
  <text x="4" y="{{ chart.top + 10 }}" font-size="11" fill="#444">max ${{ "%.2f"|format(chart.peak) }}</text>
</svg>
<h2>Budgets per key: today (UTC) and {{ month }}</h2>
<table id="budgets"><tr><th rowspan="2">key</th><th rowspan="2">user</th><th rowspan="2">status</th>
<th colspan="4">today</th><th colspan="4">{{ month }}</th><th rowspan="2">in flight</th></tr>
<tr>{% for _ in range(2) %}<th>spent</th><th>reserved</th><th>budget</th><th>use</th>{% endfor %}</tr>
{% for key in keys %}<tr><td>{{ key.id }}</td><td>{{ key.user }}</td><td>{{ key.status }}</td>
{{ period(key.daily) }}{{ period(key.monthly) }}<td class="n">{{ key.inFlight }}</td></tr>
{% else %}<tr><td colspan="12" class="muted">no keys</td></tr>{% endfor %}
</table>
{{ over_time("spend-per-key", "Spend per key", "key", perKey, key_colour) }}
{{ over_time("spend-per-model", "Spend per model", "model", perModel, model_colour) }}
<h2>Top models this month</h2>
<table><tr><th>model</th><th>requests</th><th>images</th><th>spend</th></tr>
{% for model, totals in models %}<tr><td>{{ model }}</td><td class="n">{{ totals.requests }}</td>
<td class="n">{{ totals.images }}</td><td class="n">${{ "%.4f"|format(totals.cost) }}</td></tr>
{% else %}<tr><td colspan="4" class="muted">no spend yet</td></tr>{% endfor %}
</table>
<h2>Refusals, last {{ daily|length }} days</h2>
<table><tr><th>day</th><th>key</th><th>code</th><th>refused</th></tr>
{% for day, key_id, code, number in refusals %}<tr><td>{{ day }}</td><td>{{ key_id }}</td><td>{{ code }}</td>
<td class="n">{{ number }}</td></tr>
{% else %}<tr><td colspan="4" class="muted">none</td></tr>{% endfor %}
</table>
<h2>Open reservations</h2>
<p>{{ keys|sum(attribute="inFlight") }} request(s) at a provider now, holding
${{ "%.4f"|format(keys|sum(attribute="monthly.reserved")) }}.</p>
</body></html>
"""

_LOGIN = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ziri-images: sign in</title><style>{{ style }}</style></head>
<body><h1>ziri-images spend</h1>
{% if error %}<p class="error">{{ error }}</p>{% endif %}
<form method="post" action="/admin/login">
<input type="hidden" name="csrf" value="{{ nonce }}">
<label>Admin token <input type="password" name="token" autocomplete="current-password" autofocus></label>
<button type="submit">Sign in</button></form></body></html>
"""


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
    return render_template_string(_DASHBOARD, style=_STYLE, colour=BAR_COLOUR, chart=spend_chart(overview["daily"]),
                                  key_colour=KEY_COLOUR, model_colour=MODEL_COLOUR, sparkline=sparkline, **overview)


def render_login(nonce, error=None):
    return render_template_string(_LOGIN, style=_STYLE, nonce=nonce, error=error)
