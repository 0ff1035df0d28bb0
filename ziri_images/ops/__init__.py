"""Operating the gateway: what an operator watches and what a load balancer asks.

``metrics`` exports Prometheus metrics at ``/metrics``; ``refusals`` counts the requests refused
before they reached a store (per key and code, across processes); ``dashboard`` (with its page in
``dashboard_page``) shows spend and refusals to an operator; ``readiness`` answers
``/ready`` from a list of named checks.
"""
