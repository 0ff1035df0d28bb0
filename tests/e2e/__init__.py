"""End-to-end tests: real gateway and stub processes on 127.0.0.1."""
