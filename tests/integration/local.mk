# tests/integration/: a real salientd on loopback, driven with curl.
INTEGRATION_TESTS = tests/integration/test_salientd.sh
TESTS += $(INTEGRATION_TESTS)
EXTRA_DIST += $(INTEGRATION_TESTS) tests/integration/README.md
