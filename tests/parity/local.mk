# tests/parity/: whole models against PyTorch (seeded weights -> export.py -> salient-run).
PARITY_TESTS = \
	tests/parity/test_preprocess.sh \
	tests/parity/test_densenet.sh \
	tests/parity/test_resnet.sh \
	tests/parity/test_swin.sh \
	tests/parity/test_quadrant_ae.sh
TESTS += $(PARITY_TESTS)
EXTRA_DIST += $(PARITY_TESTS) tests/parity/paritylib.py tests/parity/README.md
