"""moto's CloudFormation parsing templates with libyaml (gip.local.moto_yaml): the same documents
and the same failures as PyYAML's pure-Python loader, for every template we deploy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from gip.local import moto_yaml

TEMPLATES = sorted((Path(__file__).resolve().parent.parent / "templates").glob("*.yaml"))


def cfn_modules() -> tuple[Any, Any]:
    """moto's CloudFormation modules, imported when a test here runs (~0.5 s; each xdist worker
    collects every test file)."""
    from moto.cloudformation import models, responses

    return models, responses


def pure(text: str) -> object:
    """What moto parsed before: PyYAML's pure-Python Loader with moto's tag constructor."""
    from moto.cloudformation.utils import yaml_tag_constructor

    yaml.add_multi_constructor("", yaml_tag_constructor)
    return yaml.load(text, Loader=yaml.Loader)


@pytest.fixture(autouse=True)
def installed() -> None:
    moto_yaml.install()
    moto_yaml.install()  # idempotent


def test_the_templates_parse_the_same_through_libyaml() -> None:
    models, responses = cfn_modules()
    assert TEMPLATES and models.yaml.Loader is responses.yaml.Loader is moto_yaml._CLoader
    assert issubclass(moto_yaml._CLoader, yaml.CLoader)
    for path in TEMPLATES:
        text = path.read_text()
        parsed = models.Stack.parse_template(text)
        assert parsed == pure(text) and parsed["Resources"], path.name
        assert any("Fn::" in json.dumps(v) or "Ref" in json.dumps(v) for v in parsed["Resources"].values())


def test_broken_yaml_fails_the_same_way() -> None:
    models, _ = cfn_modules()
    for text in ("Resources: [", "a: b: c", "{\"Resources\": {\"A\": \"B\"}}"):
        try:
            want: object = pure(text)
        except yaml.YAMLError as exc:
            want = type(exc)
        try:
            got: object = yaml.load(text, Loader=models.yaml.Loader)
        except yaml.YAMLError as exc:
            got = type(exc)
        assert got == want, text
    with pytest.raises(json.JSONDecodeError):  # moto falls back to JSON, which fails too
        models.Stack.parse_template("Resources: [")


def test_uninstall_gives_moto_its_yaml_back() -> None:
    models, responses = cfn_modules()
    moto_yaml.uninstall()
    try:
        assert models.yaml is yaml and responses.yaml is yaml
    finally:
        moto_yaml.install()


def test_the_endpoint_patches_cloudformation_when_its_first_request_comes() -> None:
    models, _ = cfn_modules()
    import boto3

    from gip.local.embedded_aws import EmbeddedAws

    moto_yaml.uninstall()
    with EmbeddedAws(port=0) as aws:
        boto3.client("sqs", endpoint_url=aws.url, region_name="us-east-1").list_queues()
        assert models.yaml is yaml  # no CloudFormation call yet: nothing imported for it
        cfn = boto3.client("cloudformation", endpoint_url=aws.url, region_name="us-east-1")
        cfn.validate_template(TemplateBody=TEMPLATES[0].read_text())
        assert models.yaml.Loader is moto_yaml._CLoader
