"""Lambda entry: the registrar (:mod:`gip.services.registrar`), which answers the member StackSet's
custom resource. The registrar is built once per container, from the Lambda's own ARN.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from gip import observability
from gip.adapters import custom_resource as cr
from gip.container import once
from gip.services.registrar import Registrar


@once  # once per container (whose function ARN never changes)
def _service(function_arn: str) -> Registrar:
    import boto3

    from gip.adapters.stack_instance import StackInstances
    from gip.config import Settings
    from gip.services.lifecycle import Lifecycle

    settings = Settings.from_env()
    lifecycle = Lifecycle.from_settings(settings)
    cfn = boto3.client("cloudformation", region_name=settings.region, endpoint_url=settings.endpoint_url)
    return Registrar(
        lifecycle.pool,
        instances=StackInstances(cfn, stack_set=os.environ.get("STACK_SET_NAME") or f"{settings.prefix}-member"),
        role_name=settings.processing_role_name,
        # The Lambda runs in the management account: its own ARN names it, no API call needed.
        management_account_id=function_arn.split(":")[4] if function_arn.count(":") >= 5 else "",
        deregister=lifecycle.deregister_account,
        extra_hosts=tuple(h for h in os.environ.get("CFN_RESPONSE_EXTRA_HOSTS", "").split(",") if h),
    )


@observability.entry("registrar")
def lambda_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """SNS (or SQS, or direct) event → one answered request per record."""
    registrar = _service(str(getattr(context, "invoked_function_arn", "") or ""))
    answered = [registrar.handle(payload) for payload in cr.unwrap_messages(event)]
    return {"answered": sum(1 for r in answered if r is not None), "received": len(answered)}


handler = lambda_handler  # the name the templates use
