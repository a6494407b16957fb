#!/bin/sh
# Tests only (side_effect_reboot.yml): put in /usr/local/sbin, ahead of /usr/bin on PATH,
# it makes `fscrypt unlock` fail and passes every other fscrypt command through, so a
# run of roles/model_cache fails inside the step that holds the key on its tmpfs.
if [ "${1:-}" = unlock ]; then
    echo "fscrypt unlock refused by the test wrapper" >&2
    exit 1
fi
exec /usr/bin/fscrypt "$@"
