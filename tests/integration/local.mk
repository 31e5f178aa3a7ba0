# tests/integration/: a real salientd on loopback, driven with curl (test_salientd.sh,
# test_api_docs.sh) and with Debian's /usr/bin/python3, standard library (+ PIL for
# test_attention) through .sh wrappers that skip with 77 when it is missing. Images in tests/data/.
INTEGRATION_TESTS = \
	tests/integration/test_salientd.sh \
	tests/integration/test_api.sh \
	tests/integration/test_bad_requests.sh \
	tests/integration/test_concurrency.sh \
	tests/integration/test_faults.sh \
	tests/integration/test_attention.sh \
	tests/integration/test_faces.sh \
	tests/integration/test_api_docs.sh
TESTS += $(INTEGRATION_TESTS)
EXTRA_DIST += $(INTEGRATION_TESTS) tests/integration/README.md tests/integration/lib.sh \
	tests/integration/salientd_harness.py \
	tests/integration/test_api.py \
	tests/integration/test_bad_requests.py \
	tests/integration/test_concurrency.py \
	tests/integration/test_faults.py \
	tests/integration/test_attention.py \
	tests/integration/test_faces.py \
	tests/data/README.md \
	tests/data/phantom_00000.png \
	tests/data/phantom_00001.png \
	tests/data/phantom_00002.png \
	tests/data/phantom_00000_rgb.png \
	tests/data/phantom_00000_q90.jpg \
	tests/data/phantoms_ground_truth.json \
	tests/data/api-docs/xray.png tests/data/api-docs/xray2.png tests/data/api-docs/xray.jpg \
	tests/data/api-docs/README.md
# The clients (curl examples, Python, JS), the demo frontend in a browser, nginx in front of
# replicas and the k8s manifests, the container image.
INTEGRATION_TESTS += tests/integration/test_clients.sh tests/integration/test_web.sh \
	tests/integration/test_scaleout.sh tests/integration/test_docker.sh
