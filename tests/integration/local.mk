# tests/integration/: a real salientd on loopback, driven with curl.
INTEGRATION_TESTS = tests/integration/test_salientd.sh tests/integration/test_api_docs.sh
TESTS += $(INTEGRATION_TESTS)
EXTRA_DIST += $(INTEGRATION_TESTS) tests/integration/README.md
EXTRA_DIST += tests/data/api-docs/xray.png tests/data/api-docs/xray2.png tests/data/api-docs/xray.jpg tests/data/api-docs/README.md
