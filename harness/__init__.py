"""Tools of the product, not its core: the simulated Twilio caller (`harness.simulator`) and the
example business backend (`harness.demo_backend`) used by `velox call`, `velox demo-backend`, the
benchmarks and the tests.

The harness may import `app`; `app` never imports the harness (the `velox` CLI, above both,
imports it in the commands that use it).
"""
