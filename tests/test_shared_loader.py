"""``gip.local.shared_loader``: local mode's stack process (and the tests) share one botocore loader."""

from __future__ import annotations

import boto3
import botocore.session

from gip.local import shared_loader


def test_sessions_share_one_loader_so_a_new_client_reads_no_model_again() -> None:
    shared_loader.install()
    shared_loader.install()  # idempotent: the same cache, not a cache of a cache
    first, second = botocore.session.get_session(), botocore.session.get_session()
    assert first is not second
    assert first.get_component("data_loader") is second.get_component("data_loader")
    loader = first.get_component("data_loader")
    boto3.session.Session(botocore_session=first).client("dynamodb", region_name="us-east-1")
    assert any("dynamodb" in str(key) for key in loader._cache)  # what the next session reuses
