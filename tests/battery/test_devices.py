"""Every case runs on each device present; absent devices are skipped and said so."""

import pytest
import torch

import grader
import implementations as impl
from grader._battery.cases import BCE, BCE_WITH_LOGITS


def test_absent_devices_are_reported_as_skipped():
    report = grader.check(impl.bce_direct, BCE)
    assert report.devices["cpu"] is None
    for device in ("cuda", "mps"):
        if device not in grader.available_devices():
            assert "no " in report.devices[device]
            assert f"{device} (" in str(report)


def test_only_absent_devices_means_nothing_ran_and_nothing_passed_silently():
    absent = [d for d in ("cuda", "mps") if d not in grader.available_devices()]
    if not absent:
        pytest.skip("every device is present here")
    report = grader.check(impl.bce_direct, BCE, devices=absent)
    assert not report.ran
    assert "nothing was checked" in report.summary()
    assert all(c.status == "skipped" for name, c in report.categories.items() if name != "signature")


@pytest.mark.cuda
@pytest.mark.parametrize("fn, function", [(impl.bce_direct, BCE), (impl.logits_stable, BCE_WITH_LOGITS)])
def test_correct_implementations_pass_on_cuda(fn, function):
    report = grader.check(fn, function, devices=["cuda"])
    assert report.passed, str(report)
    assert report.devices == {"cuda": None}
    # the range checks raise device-side asserts on CUDA: they are CPU-only, and said so
    assert any("CPU only" in reason for _, _, _, reason in report.skipped_cases) == (function == BCE)


@pytest.mark.cuda
def test_a_result_left_on_the_cpu_fails_output_on_cuda():
    def binary_cross_entropy(input, target, weight=None, reduction="mean"):
        return impl.bce_direct(input, target, weight, reduction).cpu()

    report = grader.check(binary_cross_entropy, devices=["cuda"], categories=["article examples"])
    assert "output" in report.failed_categories()
    assert "device cpu" in report.categories["output"].failures[0].message


@pytest.mark.cuda
def test_mistakes_still_fail_on_cuda():
    report = grader.check(impl.bce_no_clamp, BCE, devices=["cuda"])
    assert "edge values" in report.failed_categories()
    assert torch.cuda.is_available()
