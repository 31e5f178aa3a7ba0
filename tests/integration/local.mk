# tests/integration/: a real salientd on loopback, driven with curl and /usr/bin/python3.
INTEGRATION_TESTS = tests/integration/test_salientd.sh \
	tests/integration/test_attention.sh
TESTS += $(INTEGRATION_TESTS)
EXTRA_DIST += $(INTEGRATION_TESTS) tests/integration/README.md tests/integration/test_attention.py
