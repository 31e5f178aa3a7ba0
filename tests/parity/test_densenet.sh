#!/bin/sh
# placeholder until the densenet parity test lands
exit 77
