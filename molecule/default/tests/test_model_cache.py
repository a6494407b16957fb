"""The encrypted model cache (roles/model_cache) as deployed: fscrypt, the mount, the volume."""

import base64
import json
import re
import shlex

import pytest
from conftest import (
    APP_UID,
    CACHE_DIR,
    CACHE_IMAGE,
    CACHE_MARKER,
    CACHE_MOUNT,
    KEY_FILE,
    key_marker,
)
from runs import CLIENT_KEYS

TLS_KEY_FILE = "/opt/nica/compose/proxy-key/private_key.pem"
REFERENCE_WEIGHTS = "/srv/hub-data/all-MiniLM-L6-v2/model.safetensors"
REFERENCE_ONNX = "/srv/hub-data/all-MiniLM-L6-v2-onnx/onnx/model.onnx"


@pytest.fixture()
def status(sh):
    return sh(f"fscrypt status {CACHE_DIR}")


@pytest.fixture()
def options(status):
    [line] = [line for line in status.splitlines() if line.startswith("Options:")]
    return line.split()[1:]


@pytest.fixture()
def mount_unit(sh):
    return sh(f"systemd-escape --path --suffix=mount {CACHE_MOUNT}").strip()


def test_cache_directory_is_encrypted_with_fscrypt(status):
    assert f'"{CACHE_DIR}" is encrypted with fscrypt.' in status, status


@pytest.mark.parametrize(
    "option", ["policy_version:2", "contents:AES_256_XTS", "filenames:AES_256_CTS"]
)
def test_policy_option(options, option):
    assert option in options, f"fscrypt policy options are {options}, expected {option}"


def test_cache_directory_is_unlocked(status):
    assert "Unlocked: Yes" in status.splitlines(), status


def test_one_raw_key_protector_protects_the_cache(status):
    protectors = re.findall(r"^[0-9a-f]{16}\s+\S+\s+(.*)$", status, re.M)
    assert len(protectors) == 1 and protectors[0].startswith("raw key protector "), (
        f"expected one raw-key protector, got {protectors}"
    )


def test_cache_is_ext4_on_a_loop_device_backed_by_the_image(sh):
    [mount] = json.loads(sh(f"findmnt --json --mountpoint {CACHE_MOUNT}"))["filesystems"]
    assert mount["fstype"] == "ext4", f"{CACHE_MOUNT} is {mount['fstype']}, expected ext4"
    assert re.fullmatch(r"/dev/loop\d+", mount["source"]), f"source is {mount['source']}"
    backing = sh(f"losetup --noheadings --output BACK-FILE {mount['source']}").strip()
    assert backing == CACHE_IMAGE, f"{mount['source']} is backed by {backing}"


def test_filesystem_has_the_encrypt_feature(sh):
    features = sh(f"dumpe2fs -h {CACHE_IMAGE} 2>/dev/null | grep '^Filesystem features:'")
    assert "encrypt" in features.split(), features


def test_image_file_is_sparse_and_root_only(host):
    image = host.file(CACHE_IMAGE)
    assert (image.uid, image.mode) == (0, 0o600), f"owner {image.uid}, mode {oct(image.mode)}"
    blocks, block_size = map(int, host.check_output(f"stat -c '%b %B' {CACHE_IMAGE}").split())
    allocated = blocks * block_size
    assert allocated < image.size, f"{CACHE_IMAGE} is not sparse: {allocated} of {image.size} bytes"


def test_mount_unit_mounts_at_boot_before_docker(host, mount_unit):
    unit = host.service(mount_unit)
    assert unit.is_enabled, f"{mount_unit} should be enabled"
    before = host.check_output(f"systemctl show -p Before --value {shlex.quote(mount_unit)}")
    assert "docker.service" in before.split(), f"{mount_unit} is ordered before: {before}"


def test_hf_cache_volume_binds_the_unlocked_directory(sh):
    options = json.loads(sh("docker volume inspect hf-cache"))[0]["Options"]
    assert options == {"type": "none", "o": "bind", "device": CACHE_DIR}, options


def test_cache_directory_belongs_to_appuser(host):
    directory = host.file(CACHE_DIR)
    assert directory.uid == APP_UID, f"{CACHE_DIR} owner is {directory.uid}, expected {APP_UID}"
    assert directory.mode == 0o750, f"{CACHE_DIR} mode is {oct(directory.mode)}"


def test_unlocked_marker_is_inside_the_directory(host):
    assert host.file(f"{CACHE_DIR}/{CACHE_MARKER}").is_file


def test_backend_mounts_the_encrypted_directory(sh, serving):
    source = sh(f"findmnt --noheadings --output SOURCE --mountpoint {CACHE_MOUNT}").strip()
    mountinfo = sh(f"docker exec {serving} cat /proc/self/mountinfo")
    [line] = [line for line in mountinfo.splitlines() if line.split()[4] == "/var/huggingface"]
    root, mount_source = line.split()[3], line.split(" - ")[1].split()[1]
    assert (root, mount_source) == ("/hf-cache", source), (
        f"/var/huggingface in the backend is {root} on {mount_source}, "
        f"expected /hf-cache on {source}"
    )


@pytest.mark.parametrize(
    ("repo", "weights", "reference"),
    [
        # the public repo on ONNX Runtime, the private one on the NumPy BERT
        ("sentence-transformers/all-MiniLM-L6-v2", "onnx/model.onnx", REFERENCE_ONNX),
        ("nica/private-minilm", "model.safetensors", REFERENCE_WEIGHTS),
    ],
)
def test_backend_reads_the_weights_from_the_cache(
    sh, serving, hub_commits, repo, weights, reference
):
    # The deployed commit's snapshot (test_corrupt_onnx leaves a commit of its own beside it).
    folder = "models--" + repo.replace("/", "--")
    path = f"/var/huggingface/hub/{folder}/snapshots/{hub_commits[repo]}/{weights}"
    inside = sh(f"docker exec {serving} sh -c 'sha256sum {path}'").split()[0]
    assert inside == sh(f"sha256sum {reference}").split()[0], (
        f"the backend reads other {weights} of {repo} than the Hub served"
    )


def test_no_key_is_kept_on_the_host_by_default(host):
    for path in (KEY_FILE, "/etc/systemd/system/nica-model-cache-unlock.service"):
        assert not host.file(path).exists, f"{path} exists without model_cache_persist_key"


def test_the_key_tmpfs_is_gone(host):
    assert not host.mount_point("/run/nica-model-cache-key").exists
    assert not host.file("/run/nica-model-cache-key").exists


# The scan below must have read the host, not an empty or unreadable tree: a Debian host
# with its Docker engine, the stack's images and the model cache holds tens of thousands
# of files. A few may vanish while it walks (logs rotating, a container's /tmp); more read
# errors than that mean whole parts of the host were not searched.
MIN_FILES_READ = 10_000
MAX_READ_ERRORS = 20


def needles(pem: str) -> list[str]:
    """A PEM private key as the scan looks for it (base64 of the bytes): its first line of
    base64, which any copy of the PEM text holds. One needle per key: each one more is
    another pass over every file on the host."""
    return [base64.b64encode(key_marker(pem).encode()).decode()]


@pytest.fixture(scope="module")
def key_scan(host, cache_key, rotated_key, api_keys, rotated_api_key, tls_pki):
    """Every regular file on the host's own filesystems, the cache image included, searched
    for both model cache keys, base64 and raw, the API keys (the inventory's and the one
    test_redeploy rotated to), and test_tls's TLS private keys and the one deployed (not the
    fake Hub's read-only data nor the steady client's own key files): the files holding one
    [path, which], how many files were read, and the read errors."""
    wanted = {
        "model cache key": [base64.b64encode(k.encode()).decode() for k in (cache_key, rotated_key)]
        + [cache_key, rotated_key],
        "API key": [
            base64.b64encode(k.encode()).decode() for k in [*api_keys.values(), rotated_api_key]
        ],
        **{
            f"TLS key {name}": needles(pair["key"])
            for name, pair in tls_pki.items()
            if "key" in pair
        },
    }
    # The key the proxy has now, whichever session deployed it (tls_pki is made anew in
    # each): the scan must find it in its own file, and nowhere else.
    if host.file(TLS_KEY_FILE).exists:
        wanted["TLS key deployed"] = needles(host.file(TLS_KEY_FILE).content_string)
    script = (
        "import base64, json, mmap, os, sys\n"
        "wanted = {label: [base64.b64decode(n) for n in found]\n"
        "          for label, found in json.loads(sys.argv[1]).items()}\n"
        "skip = {'/proc', '/sys', '/dev', '/srv/hub-data', '/srv/hub-extra', '/srv/fake-hub',\n"
        f"        {CLIENT_KEYS!r}}}\n"
        "hits, errors, read = [], [], 0\n"
        "def keys_in(path):\n"
        "    with open(path, 'rb') as f:\n"
        "        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:\n"
        "            return [label for label, keys in wanted.items()\n"
        "                    if any(m.find(k) != -1 for k in keys)]\n"
        "def walk_error(error):\n"
        "    errors.append(f'{error.filename}: {error.strerror}')\n"
        "for top, dirs, files in os.walk('/', onerror=walk_error):\n"
        "    dirs[:] = [d for d in dirs if os.path.join(top, d) not in skip]\n"
        "    for name in files:\n"
        "        path = os.path.join(top, name)\n"
        "        try:\n"
        "            if os.path.islink(path) or not os.path.isfile(path):\n"
        "                continue\n"
        "            found = keys_in(path) if os.path.getsize(path) > 0 else []\n"
        "        except (OSError, ValueError) as error:\n"
        "            errors.append(f'{path}: {error}')\n"
        "            continue\n"
        "        read += 1\n"
        "        hits.extend([path, label] for label in found)\n"
        "print(json.dumps({'hits': hits, 'read': read, 'errors': errors}))\n"
    )
    out = host.check_output(f"python3 -c {shlex.quote(script)} {shlex.quote(json.dumps(wanted))}")
    return json.loads(out)


def test_the_key_scan_read_the_host(key_scan):
    assert key_scan["read"] >= MIN_FILES_READ, (
        f"the key scan read only {key_scan['read']} files, expected at least {MIN_FILES_READ}"
    )


def test_the_key_scan_could_read_almost_every_file(key_scan):
    errors = key_scan["errors"]
    assert len(errors) <= MAX_READ_ERRORS, (
        f"the key scan could not read {len(errors)} files or folders "
        f"(at most {MAX_READ_ERRORS} allowed): {errors[:5]}"
    )


def test_the_key_is_in_no_file_on_the_host(key_scan):
    hits = [path for path, which in key_scan["hits"] if which in ("model cache key", "API key")]
    assert hits == [], f"a model cache or API key is stored in {hits}"


def test_a_tls_private_key_is_only_in_the_proxys_key_file(host, key_scan):
    hits = [(path, which) for path, which in key_scan["hits"] if which.startswith("TLS key")]
    elsewhere = [hit for hit in hits if hit[0] != TLS_KEY_FILE]
    assert elsewhere == [], f"a TLS private key is stored outside {TLS_KEY_FILE}: {elsewhere}"
    # The scan finds the key where it is: it would find a copy.
    if host.file(TLS_KEY_FILE).exists:
        assert (TLS_KEY_FILE, "TLS key deployed") in hits, (
            f"the scan did not find the deployed TLS key in {TLS_KEY_FILE}"
        )
