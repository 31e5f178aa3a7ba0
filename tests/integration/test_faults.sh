#!/bin/sh
# test_faults.sh: runs test_faults.py (see there) with Debian's python3, standard library only.
[ -x /usr/bin/python3 ] || { echo "SKIP: /usr/bin/python3 not found"; exit 77; }
exec /usr/bin/python3 -B "$(dirname "$0")/test_faults.py"
