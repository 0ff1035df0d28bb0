"""Benchmark the gateway beside the bare forwarder and the upstream itself, on 127.0.0.1.

Run from the project's root, each script as a module: ``python -m bench.run`` (the table in
bench/README.md), ``python -m bench.instructions``, ``python -m bench.held`` and the others.
The run is built from small modules: ``processes`` (children by process group, /proc readers),
``servers`` (the upstream, the bare forwarder, the gateway), ``load`` (wrk), ``figures`` and
``ledger_figures`` (one function per figure), ``targets`` (what each figure must reach) and
``table`` (the table and bench/README.md).
"""
