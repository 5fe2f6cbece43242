"""``fs.rename`` and the paged ``fs.walk`` through a real server, on real
files: renames move contents and fail clearly; a walk fetched a few entries
a page lists exactly the tree ``os.lstat`` sees, with its sizes, modes and
times."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import execd
import execd.sync
from conftest import Server, run_async


def test_rename_moves_replaces_and_names_what_is_missing(server: Server, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "f").write_bytes(b"contents")
    (tmp_path / "b" / "old").write_bytes(b"replaced")

    async def body() -> None:
        async with execd.connect(server.url, token=server.token) as env:
            await env.fs.rename(f"{tmp_path}/a/f", f"{tmp_path}/b/g")
            assert not (tmp_path / "a" / "f").exists()
            assert (tmp_path / "b" / "g").read_bytes() == b"contents"
            await env.fs.rename(f"{tmp_path}/b/g", f"{tmp_path}/b/old")
            assert (tmp_path / "b" / "old").read_bytes() == b"contents"
            assert sorted(os.listdir(tmp_path / "b")) == ["old"]
            await env.fs.rename(f"{tmp_path}/b", f"{tmp_path}/c")
            assert (tmp_path / "c" / "old").read_bytes() == b"contents"
            with pytest.raises(execd.NotFoundError, match="nope"):
                await env.fs.rename(f"{tmp_path}/nope", f"{tmp_path}/x")
            with pytest.raises(execd.NotFoundError, match="missing-dir"):
                await env.fs.rename(f"{tmp_path}/c/old", f"{tmp_path}/missing-dir/x")
            assert (tmp_path / "c" / "old").exists()
            other = Path("/dev/shm")
            if other.is_dir() and os.stat(other).st_dev != os.stat(tmp_path).st_dev:
                with pytest.raises(execd.FailedError, match="EXDEV"):
                    await env.fs.rename(f"{tmp_path}/c/old", f"{other}/execd-py-{tmp_path.name}")
                assert (tmp_path / "c" / "old").exists()

    run_async(body())


def make_tree(root: Path) -> None:
    """Directories three deep, files of several sizes and modes, symlinks and a fifo."""
    for directory in ("d1/d2/d3", "e", "f/g"):
        (root / directory).mkdir(parents=True)
    for number, name in enumerate(("top", "d1/x", "d1/d2/y", "d1/d2/d3/z", "e/one", "e/two", "f/g/h")):
        path = root / name
        path.write_bytes(b"x" * (number * 37))
        path.chmod(0o600 + number)
    os.utime(root / "e/one", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    (root / "link-to-file").symlink_to("top")
    (root / "e" / "link-to-dir").symlink_to("../d1")
    os.mkfifo(root / "fifo")


def lstat_tree(root: Path, symlinks: bool) -> dict[str, tuple[str, int, int, int]]:
    """What the walk should list: path -> (kind, size, mode, mtime in ms)."""
    expected = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            if stat.S_ISDIR(info.st_mode):
                kind = "directory"
            elif stat.S_ISREG(info.st_mode):
                kind = "file"
            elif stat.S_ISLNK(info.st_mode):
                if not symlinks:
                    continue
                kind = "symlink"
            else:
                continue
            expected[path] = (kind, info.st_size, info.st_mode & 0o7777, info.st_mtime_ns // 1_000_000)
    return expected


def test_a_paged_walk_lists_what_lstat_sees(server: Server, tmp_path: Path) -> None:
    make_tree(tmp_path)

    async def body() -> None:
        async with execd.connect(server.url, token=server.token) as env:
            walk = env.fs.walk(str(tmp_path), metadata=True, include_symlinks=True, page_size=3)
            entries = await walk.collect()
            assert walk.pages >= 5, walk.pages
            assert not walk.truncated and walk.errors == []
            listed = [e.path for e in entries]
            assert len(listed) == len(set(listed)), f"listed twice: {listed}"
            depths = [p.count("/") for p in listed]
            assert depths == sorted(depths), f"not breadth first: {listed}"
            got = {e.path: (e.kind, e.size, e.mode, e.modified_at_ms) for e in entries}
            assert got == lstat_tree(tmp_path, symlinks=True)
            assert got[f"{tmp_path}/e/one"][3] == 1_600_000_000_123

            plain = await env.fs.walk(str(tmp_path), page_size=4).collect()
            assert {e.path: e.kind for e in plain} == {
                path: kind for path, (kind, *_) in lstat_tree(tmp_path, symlinks=False).items()
            }
            assert all(e.size is None and e.mode is None for e in plain)

            other = await env.fs.walk(str(tmp_path), include_other=True).collect()
            assert [e.kind for e in other if e.path == f"{tmp_path}/fifo"] == ["other"]

            capped = env.fs.walk(str(tmp_path), max_entries=4, page_size=2)
            assert len(await capped.collect()) <= 4 and capped.truncated

            with pytest.raises(execd.NotFoundError):
                await env.fs.walk(f"{tmp_path}/nope").collect()
            bad = {"path": str(tmp_path), "options": {"maxDepth": 4, "maxDirectories": 10, "maxEntries": 10,
                   "followDirectorySymlinks": False}, "limit": 2, "cursor": "not-a-cursor"}  # fmt: skip
            with pytest.raises(execd.InvalidInputError, match="cursor"):
                await env.connection.call("fs/walk", bad)
            # The connection is fine afterwards.
            assert len(await env.fs.walk(str(tmp_path / "e")).collect()) == 2

    run_async(body())


def test_rename_and_walk_blocking(server: Server, tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"12345")
    with execd.sync.connect(server.url, token=server.token) as env:
        env.fs.rename(f"{tmp_path}/d/f", f"{tmp_path}/d/g")
        entries = env.fs.walk(str(tmp_path), metadata=True, page_size=1)
        assert [(e.path, e.kind, e.size) for e in entries] == [
            (f"{tmp_path}/d", "directory", (tmp_path / "d").lstat().st_size),
            (f"{tmp_path}/d/g", "file", 5),
        ]
