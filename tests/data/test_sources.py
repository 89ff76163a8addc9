import io
import tarfile
import zipfile

import pytest

from tasks.data.sources import SourceError, check_source, iter_source, label_from_name, parse_labels_csv


@pytest.mark.parametrize("name, label", [
    ("226md.png", "226md"), ("A3K7_0001.png", "A3K7"), ("0024miih-1.jpeg", "0024miih"),
    ("sub/dir/xy9.PNG", "xy9"), ("abc_def_12.png", "abc"),
])
def test_label_from_name(name, label):
    assert label_from_name(name) == label


def test_folder_recursive_skips_hidden_and_non_images(tmp_path):
    (tmp_path / "nested").mkdir()
    (tmp_path / ".git").mkdir()
    for path in ("ab1.png", "nested/cd2.jpg", ".hidden.png", ".git/ef3.png", "notes.txt"):
        (tmp_path / path).write_bytes(b"x")
    items = list(iter_source(str(tmp_path)))
    assert [(i.name, i.label) for i in items] == [("ab1.png", "ab1"), ("nested/cd2.jpg", "cd2")]
    assert items[0].read() == b"x"


def test_labels_csv_overrides_file_names(tmp_path):
    (tmp_path / "img1.png").write_bytes(b"1")
    (tmp_path / "img2.png").write_bytes(b"2")
    (tmp_path / "labels.csv").write_text("filename,label\nimg1.png,XY12\n")
    items = {i.name: i.label for i in iter_source(str(tmp_path))}
    assert items == {"img1.png": "XY12", "img2.png": None}


def test_bad_labels_csv_is_a_clear_error():
    with pytest.raises(SourceError, match="row 1: expected two columns"):
        parse_labels_csv(b"a.png,b,c\n", "labels.csv")
    with pytest.raises(SourceError, match="not a readable UTF-8 CSV"):
        parse_labels_csv(b"\xff\xfe\x00bad", "labels.csv")


def test_symlink_out_of_the_folder_is_refused(tmp_path):
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"secret")
    source = tmp_path / "src"
    source.mkdir()
    (source / "in12.png").symlink_to(outside)
    (source / "ok34.png").write_bytes(b"x")
    (source / "alias56.png").symlink_to(source / "ok34.png")
    items = {i.name: i for i in iter_source(str(source))}
    assert items["in12.png"].problem == "symbolic link leads outside the source folder"
    assert items["alias56.png"].problem is None and items["alias56.png"].read() == b"x"


def test_a_labels_file_linking_out_of_the_folder_is_refused(tmp_path):
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("filename,label\nok34.png,SECRET\n")
    source = tmp_path / "src"
    source.mkdir()
    (source / "ok34.png").write_bytes(b"x")
    (source / "labels.csv").symlink_to(outside)
    with pytest.raises(SourceError, match="labels.csv is a symbolic link that leads outside the source folder"):
        list(iter_source(str(source)))
    (source / "labels.csv").unlink()
    (source / "mine.csv").write_text("filename,label\nok34.png,AB12\n")
    (source / "labels.csv").symlink_to(source / "mine.csv")  # a link within the folder is fine, as for images
    assert [i.label for i in iter_source(str(source))] == ["AB12"]


def test_zip_archive(tmp_path):
    path = tmp_path / "set.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a/abc1.png", b"1")
        archive.writestr("../evil9.png", b"2")
        archive.writestr("readme.md", b"3")
    items = {i.name: i for i in iter_source(str(path))}
    assert items["a/abc1.png"].read() == b"1" and items["a/abc1.png"].label == "abc1"
    assert items["../evil9.png"].problem == "archive entry climbs out of the extraction folder"
    assert set(items) == {"a/abc1.png", "../evil9.png"}


def test_tar_gz_archive_with_labels_csv(tmp_path):
    path = tmp_path / "set.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name, data in (("x/one.png", b"1"), ("x/labels.csv", b"one.png,Q7\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("x/link.png")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        archive.addfile(link)
    items = {i.name: i for i in iter_source(str(path))}
    assert items["x/one.png"].label == "Q7" and items["x/one.png"].read() == b"1"
    assert items["x/link.png"].problem == "archive entry is a link or special file"


def test_s3_prefix(s3_bucket, s3_options):
    from tasks.store.s3 import make_s3_client

    client = make_s3_client(s3_options)
    client.put_object(Bucket=s3_bucket, Key="landing/ab12.png", Body=b"1")
    client.put_object(Bucket=s3_bucket, Key="landing/deep/cd34.png", Body=b"2")
    client.put_object(Bucket=s3_bucket, Key="other/ef56.png", Body=b"3")
    items = list(iter_source(f"s3://{s3_bucket}/landing", s3_options))
    assert [(i.name, i.label, i.read()) for i in items] == [("ab12.png", "ab12", b"1"), ("deep/cd34.png", "cd34", b"2")]


@pytest.mark.parametrize("uri, message", [
    ("/no/such/folder", "does not exist"),
    ("ftp://x/y", "unknown scheme"),
    ("synthetic://?count=-1", "count must be"),
    ("synthetic://?colour=red", "unknown key"),
    ("s3://", "names no bucket"),
])
def test_bad_sources_are_refused_before_work(uri, message):
    with pytest.raises(SourceError, match=message):
        check_source(uri)


def test_plain_file_that_is_not_an_archive(tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(b"1")
    with pytest.raises(SourceError, match="not a .zip"):
        check_source(str(path))


def test_zip_entry_that_unpacks_too_large_is_refused_without_unpacking(tmp_path):
    import zipfile

    from tasks.data.sources import MAX_FILE_BYTES
    from tasks.data.sources.files import iter_zip

    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big7.png", b"\0" * (MAX_FILE_BYTES + 1))  # compresses to a few kilobytes
        zf.writestr("ok8.png", b"not checked here")
    assert archive.stat().st_size < 100_000
    items = {item.name: item for item in iter_zip(archive)}
    assert items["big7.png"].problem == (f"archive entry is {MAX_FILE_BYTES + 1} bytes unpacked, over the "
                                         f"{MAX_FILE_BYTES}-byte limit")
    assert items["ok8.png"].problem is None


def test_an_s3_object_gone_between_listing_and_reading_is_quarantined(s3_bucket, s3_options, tmp_path, monkeypatch):
    """One object deleted after the listing: that image is refused with the reason, the rest is stored."""
    from conftest import make_config
    from PIL import Image

    from tasks.ingest import ingest
    from tasks.store import LocalStore
    from tasks.store.s3 import make_s3_client

    client = make_s3_client(s3_options)
    for i in range(6):
        data = io.BytesIO()
        Image.new("L", (60, 20), 40 * i).save(data, "PNG")
        client.put_object(Bucket=s3_bucket, Key=f"landing/{1000 + i}.png", Body=data.getvalue())

    def listed_then_one_deleted(source, options):
        items = iter_source(source, options)
        yield next(items)  # the page of keys has been listed
        client.delete_object(Bucket=s3_bucket, Key="landing/1003.png")
        yield from items

    monkeypatch.setattr("tasks.ingest.iter_source", listed_then_one_deleted)
    store = LocalStore(tmp_path / "store")
    summary = ingest(make_config(store, source=f"s3://{s3_bucket}/landing"), store, s3_options)
    assert (summary["seen"], summary["stored"], summary["refused"]) == (6, 5, 1)
    [refused] = store.iter_jsonl(summary["quarantine"])
    assert refused == {"name": "1003.png", "reason": f"s3://{s3_bucket}/landing/1003.png was listed but is gone "
                                                     "(deleted or replaced since)"}
