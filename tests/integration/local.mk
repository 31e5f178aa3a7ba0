# tests/integration/: a real salientd on loopback, driven with curl.
INTEGRATION_TESTS = tests/integration/test_salientd.sh
TESTS += $(INTEGRATION_TESTS)
EXTRA_DIST += $(INTEGRATION_TESTS) tests/integration/README.md
# The clients (curl examples, Python, JS), the demo frontend in a browser, the container image.
INTEGRATION_TESTS += tests/integration/test_clients.sh tests/integration/test_web.sh
