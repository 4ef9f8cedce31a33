"""The pure decision: does the StackSet's view confirm a registration request?"""

from __future__ import annotations

import pytest

from gip.adapters.stack_instance import Instance, Operation, decide, same_stack, stack_name

A = "222233334444"
STACK = f"arn:aws:cloudformation:eu-west-1:{A}:stack/StackSet-gip-member-9f1c/0a1b2c3d-1111-2222-3333-444455556666"
LIVE = Instance(A, "eu-west-1", stack_id=STACK, status="CURRENT", detailed_status="SUCCEEDED", last_operation_id="op")


def test_same_stack_compares_account_region_and_name_not_the_trailing_id() -> None:
    assert same_stack(STACK, STACK.rsplit("/", 1)[0] + "/ffffffff-0000-0000-0000-000000000000")
    assert not same_stack(STACK, STACK.replace("eu-west-1", "us-east-1"))
    assert not same_stack(STACK, STACK.replace(A, "555566667777"))
    assert not same_stack(STACK, STACK.replace("9f1c", "9f1d"))
    assert not same_stack(STACK, "not an arn")
    assert stack_name(STACK) == "StackSet-gip-member-9f1c"


@pytest.mark.parametrize(("instance", "operation", "confirmed"), [
    (None, None, True),                                            # gone
    (LIVE, Operation("DELETE", "RUNNING"), True),                  # being deleted
    (LIVE, Operation("DELETE", "QUEUED"), True),
    (LIVE, Operation("DELETE", "SUCCEEDED"), False),               # a finished delete left it there
    (LIVE, Operation("CREATE", "SUCCEEDED"), False),               # healthy: forged
    (LIVE, Operation("UPDATE", "RUNNING"), False),
    (LIVE, None, False),
    (Instance(A, "eu-west-1", stack_id=STACK.replace("9f1c", "7777")), Operation("DELETE", "RUNNING"), False),
])
def test_delete_is_confirmed_only_when_the_instance_is_gone_or_being_deleted(
        instance: Instance | None, operation: Operation | None, confirmed: bool) -> None:
    verdict = decide("Delete", stack_id=STACK, instance=instance, operation=operation)
    assert verdict.confirmed is confirmed
    assert verdict.reason and "\n" not in verdict.reason


def test_create_needs_an_instance_of_the_same_stack() -> None:
    assert decide("Create", stack_id=STACK, instance=LIVE, operation=None).confirmed
    running = Instance(A, "eu-west-1", detailed_status="RUNNING")  # StackId not reported yet
    assert decide("Create", stack_id=STACK, instance=running, operation=None).confirmed
    assert not decide("Create", stack_id=STACK, instance=None, operation=None).confirmed
    other = Instance(A, "eu-west-1", stack_id=STACK.replace("9f1c", "7777"))
    assert decide("Create", stack_id=STACK, instance=other, operation=None).reason == \
        "the account's stack instance is another stack"
