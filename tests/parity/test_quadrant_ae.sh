#!/bin/sh
# placeholder until the quadrant_ae parity test lands
exit 77
