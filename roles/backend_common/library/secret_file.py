#!/usr/bin/python
"""Ansible module: write one secret file, atomically, owned by its reader, mode 0400.

The one writer of every secret file the backend roles place (the Hugging Face token,
database passwords, API keys, private keys). A module, not `copy: content=`: copy stages
the content in temporary files on the controller and in the remote user's temp
directory; this module receives it as an argument (over stdin with pipelining, never in a
file) and writes it straight into a temp file beside its destination (umask 077), which
is chowned, chmodded and renamed over it. Only digests are compared, so a run with nothing
to change changes nothing; the content is never returned.

One of three sources:
  content     the secret itself (from ansible-vault)
  generate    N random characters [A-Za-z0-9], made on the host, only when the file is
              missing: the secret never travels through Ansible
  copy_from   another file on the host (a reader's own copy of a secret)
"""

from __future__ import annotations

import hashlib
import os
import secrets
import string
import tempfile
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: secret_file
short_description: Write a secret file atomically, owned by its reader, mode 0400
options:
  path: {type: path, required: true, description: The secret file.}
  owner: {type: int, required: true, description: UID that owns it (the reader).}
  group: {type: int, required: true, description: GID that owns it.}
  mode: {type: str, default: "0400", description: Its mode.}
  content: {type: str, description: The secret, written when the file differs.}
  generate: {type: int, description: Random characters to write when the file is missing.}
  copy_from: {type: path, description: A file on the host whose content it must hold.}
"""

ALPHABET = string.ascii_letters + string.digits


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def write_atomically(path: str, data: bytes, owner: int, group: int, mode: int) -> None:
    """A temp file beside `path` (never readable by others), then renamed over it."""
    old_umask = os.umask(0o077)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=os.path.dirname(path))
    finally:
        os.umask(old_umask)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chown(tmp, owner, group)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def wanted_content(params: dict[str, Any], current: bytes | None) -> bytes | None:
    """What the file must hold, or None when its content is left as it is."""
    if params["content"] is not None:
        return str(params["content"]).encode()
    if params["copy_from"] is not None:
        source = read(params["copy_from"])
        if source is None:
            raise FileNotFoundError(f"copy_from: {params['copy_from']} does not exist")
        return source
    if current is None:
        return "".join(secrets.choice(ALPHABET) for _ in range(params["generate"])).encode()
    return None


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "owner": {"type": "int", "required": True},
            "group": {"type": "int", "required": True},
            "mode": {"type": "str", "default": "0400"},
            "content": {"type": "str", "no_log": True},
            "generate": {"type": "int"},
            "copy_from": {"type": "path"},
        },
        required_one_of=[("content", "generate", "copy_from")],
        mutually_exclusive=[("content", "generate", "copy_from")],
        supports_check_mode=True,
    )
    params = module.params
    path, mode = params["path"], int(params["mode"], 8)
    if not os.path.isdir(os.path.dirname(path)):
        if module.check_mode:  # a first dry run: the directory would be made before
            module.exit_json(changed=True, path=path)
        module.fail_json(
            msg=f"{os.path.dirname(path)} does not exist; create the secrets directory first"
        )
    current = read(path)
    try:
        wanted = wanted_content(params, current)
    except FileNotFoundError as error:
        if module.check_mode:  # a dry run before the source is made (it would be, first)
            module.exit_json(changed=True, path=path)
        module.fail_json(msg=str(error))
    rewrite = wanted is not None and (current is None or digest(current) != digest(wanted))
    stat = None if current is None else os.stat(path)
    fix_owner = stat is not None and (stat.st_uid, stat.st_gid, stat.st_mode & 0o7777) != (
        params["owner"],
        params["group"],
        mode,
    )
    if module.check_mode or not (rewrite or fix_owner):
        module.exit_json(changed=rewrite or fix_owner, path=path)
    if rewrite:
        assert wanted is not None
        write_atomically(path, wanted, params["owner"], params["group"], mode)
    else:
        os.chown(path, params["owner"], params["group"])
        os.chmod(path, mode)
    module.exit_json(changed=True, path=path)


if __name__ == "__main__":
    main()
