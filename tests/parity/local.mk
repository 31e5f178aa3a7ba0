# tests/parity/: whole models against PyTorch (seeded weights -> export.py -> salient-run).
PARITY_TESTS = \
	tests/parity/test_preprocess.sh \
	tests/parity/test_densenet.sh \
	tests/parity/test_resnet.sh \
	tests/parity/test_swin.sh \
	tests/parity/test_quadrant_ae.sh \
	tests/parity/test_end_to_end.sh \
	tests/parity/test_attention.sh \
	tests/parity/test_faceapi.sh \
	tests/parity/test_faceapi_attention.sh
TESTS += $(PARITY_TESTS)
EXTRA_DIST += $(PARITY_TESTS) tests/parity/paritylib.py tests/parity/README.md \
	tests/parity/parity_preprocess.py tests/parity/parity_densenet.py tests/parity/parity_resnet.py \
	tests/parity/parity_swin.py tests/parity/parity_quadrant_ae.py tests/parity/parity_end_to_end.py \
	tests/parity/parity_attention.py tests/parity/parity_faceapi.js tests/parity/faceapi_ref.js \
	tests/parity/parity_faceapi_attention.js
