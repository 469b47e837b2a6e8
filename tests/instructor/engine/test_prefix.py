"""What the engine reads of a submission's folder to tell whether it may share the released
beginning: never through a link, never a FIFO or a device, never without a size limit."""

import os
import threading

from grader.instructor.engine import prefix


def test_a_folder_of_traps_is_read_without_blocking_following_links_or_reading_forever(tmp_path):
    (tmp_path / "data.txt").write_text("data")
    os.mkfifo(tmp_path / "fifo")                                   # open() would block
    (tmp_path / "random").symlink_to("/dev/urandom")                # read() would never end
    (tmp_path / "master").symlink_to(tmp_path / "data.txt")         # a link to a real file
    (tmp_path / "outside").symlink_to("/etc", target_is_directory=True)
    found = {}
    reader = threading.Thread(target=lambda: found.update(prefix.file_digests(str(tmp_path))), daemon=True)
    reader.start()
    reader.join(timeout=30)
    assert not reader.is_alive(), "reading the folder blocked"
    assert found["data.txt"] == prefix.file_digests(str(tmp_path), ignore=("fifo", "random", "master"))["data.txt"]
    assert found["fifo"] == found["random"] == found["master"] == "not a regular file"
    assert not any(name.startswith("outside/") for name in found)   # a linked folder is not walked


def test_a_file_over_the_limit_is_not_read_and_never_matches(tmp_path, monkeypatch):
    monkeypatch.setattr(prefix, "DIGEST_LIMIT", 1000)
    (tmp_path / "big.bin").write_bytes(b"x" * 5000)
    assert prefix.file_digests(str(tmp_path))["big.bin"] == "not a regular file of a readable size"
