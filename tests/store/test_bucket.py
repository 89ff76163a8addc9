"""The deployment's bucket set-up (`python -m tasks.store.bucket`), against the test S3 server."""
import subprocess
import sys
import uuid

import pytest

from tasks.store.bucket import ensure_bucket, main
from tasks.store.s3 import make_s3_client


def test_the_bucket_is_created_once_and_found_after(s3_options):
    client = make_s3_client(s3_options)
    name = f"init-{uuid.uuid4().hex[:10]}"
    assert ensure_bucket(client, name) is True
    client.put_object(Bucket=name, Key="store/kept", Body=b"1")
    assert ensure_bucket(client, name) is False
    assert client.get_object(Bucket=name, Key="store/kept")["Body"].read() == b"1"


def test_the_command_takes_a_store_uri_and_the_endpoint(s3_endpoint, capsys):
    name = f"init-{uuid.uuid4().hex[:10]}"
    assert main([f"s3://{name}/store", "--endpoint-url", s3_endpoint]) == 0
    assert main([f"s3://{name}", "--endpoint-url", s3_endpoint]) == 0
    assert capsys.readouterr().out.splitlines() == [f"bucket {name}: created", f"bucket {name}: already there"]


@pytest.mark.parametrize("uri", ["file:///tmp/store", "s3://", "captcha"])
def test_anything_but_an_s3_bucket_is_refused(uri):
    done = subprocess.run([sys.executable, "-m", "tasks.store.bucket", uri], capture_output=True, text=True)
    assert done.returncode == 2 and f"{uri!r} is not an s3://bucket URI" in done.stderr
