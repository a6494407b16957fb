"""What the day-2 stories left on the host: the serving and the previous release, and no
more releases (nor their images) than backend_keep_releases."""


def test_the_serving_and_previous_release_stay_on_the_host(sh, release):
    for image in (release["image"], release["previous_image"]):
        assert sh(f"docker image ls -q {image}").strip(), f"{image} is gone from the host"


def test_old_releases_are_pruned_with_their_images(sh, release):
    keep = 3  # roles/backend_common's backend_keep_releases
    listing = sh("ls -t /opt/nica/releases").split()
    pinned = {release["release"], release["previous_release"]} | {
        slot["release"] for slot in release["slots"].values()
    }
    beyond = [name for name in listing[keep:] if name not in pinned]
    assert not beyond, f"releases beyond the last {keep} were kept: {beyond}"
    kept_tags = {name.rsplit(".", 1)[0] for name in listing}
    images = sh("docker image ls --format '{{.Tag}}' nica-pro-backend").split()
    stray = sorted(set(images) - kept_tags)
    assert not stray, f"images of pruned releases are still on the host: {stray}"
