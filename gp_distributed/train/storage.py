"""Object storage for runs (`train.storage_path: s3://bucket/prefix`): the only pyarrow.fs import.

Ray Train writes checkpoints through a pyarrow filesystem; this module builds it, checks the bucket on
the driver before Ray starts.

Credentials never appear in the config, in logs or in what crosses to Ray: the filesystem is built
without keys, so the driver and every worker read them from their own environment (AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY, a profile, or an instance role: AWS's default chain). An S3-compatible server
other than AWS is named by AWS_ENDPOINT_URL, which pyarrow, boto3 and so MLflow's S3 artifact store all
honour; the driver's endpoint travels inside the pickled filesystem, so workers need only credentials.
"""

from __future__ import annotations

import os
import uuid

import pyarrow.fs as pafs

from gp_distributed.errors import ConfigError

_PROBE_ATTEMPTS = 2  # a probe answers in seconds; Ray's uploads keep pyarrow's default retries
_CONNECT_TIMEOUT_S = 5.0


def split_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/a/b` -> ("bucket", "bucket/a/b"): the bucket and the path pyarrow's S3 takes."""
    path = uri.split("://", 1)[1].strip("/")
    return path.split("/", 1)[0], path


def storage_filesystem(*, probe: bool = False) -> pafs.S3FileSystem:
    """The S3 filesystem runs are written through: endpoint from AWS_ENDPOINT_URL (or AWS itself),
    credentials from each process's environment (never passed here, so never pickled)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    options: dict[str, object] = {"connect_timeout": _CONNECT_TIMEOUT_S}
    if endpoint:
        options["endpoint_override"] = endpoint
        options["scheme"] = endpoint.split("://", 1)[0] if "://" in endpoint else "https"
    if probe:
        options["retry_strategy"] = pafs.AwsStandardS3RetryStrategy(max_attempts=_PROBE_ATTEMPTS)
        options["request_timeout"] = 20.0
    return pafs.S3FileSystem(**options)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def check_storage(uri: str) -> None:
    """On the driver, before Ray starts: the bucket answers, exists and accepts a write (a probe object
    under the prefix, deleted again). One-line ConfigError naming `train.storage_path` otherwise."""
    bucket, path = split_uri(uri)
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "AWS S3"
    fs = storage_filesystem(probe=True)
    probe = f"{path}/.gp-write-probe-{uuid.uuid4().hex}"
    try:
        if fs.get_file_info(bucket).type == pafs.FileType.NotFound:
            raise ConfigError("config", "train.storage_path", f"{uri}: bucket {bucket!r} does not exist at {endpoint}")
        with fs.open_output_stream(probe) as stream:
            stream.write(b"gp_distributed write probe\n")
        fs.delete_file(probe)
    except OSError as error:
        raise ConfigError("config", "train.storage_path", f"{uri}: object store at {endpoint} refused or did not "
                          f"answer ({_first_line(error)}); check AWS_ENDPOINT_URL and the credentials in the "
                          "environment") from None

