"""benchmarks.gpu judges nothing "met" on speed alone: a configuration's keypoints come first."""

from __future__ import annotations

from benchmarks import gpu


def _entry(p50: float, median_px: float, max_px: float, precision: str = "fp32") -> dict:
    vs_cpu = {"median_px": median_px, "max_px": max_px}
    return {
        "app": {"p50": p50, "p99": p50 * 1.2},
        "app_network": {"p50": p50},
        "plain_network": {"p50": p50},
        "network_vs_plain": 1.0,
        "fps": round(1e3 / p50, 1),
        "vs_cpu": vs_cpu,
        "keypoints_ok": gpu.keypoints_right(vs_cpu, precision),
    }


def test_a_fast_configuration_with_wrong_keypoints_meets_no_goal() -> None:
    stale = _entry(1.5, 14.92, 48.43)  # release 0.7.0's DLC3 export on an H200: a stale input
    assert stale["keypoints_ok"] is False
    results = {
        gpu.RESNET: {
            "onnxruntime_cuda_fp16_b1": _entry(1.5, 14.92, 48.44, "fp16"),
            "onnxruntime_cuda_fp32_b1": stale,
            "onnxruntime_tensorrt_fp16_b1": _entry(1.0, 14.9, 48.4, "fp16"),
        }
    }
    lines = {line["goal"].split(":")[0]: line for line in gpu.goals(results)}
    first = next(iter(lines.values()))
    assert first["verdict"] == "missed" and len(first["figure"]) == 3
    assert all(line["verdict"] != "met" for line in lines.values()), lines


def test_right_keypoints_let_the_speed_be_judged() -> None:
    results = {
        gpu.RESNET: {
            "onnxruntime_cuda_fp16_b1": _entry(1.5, 0.02, 0.2, "fp16"),
            "onnxruntime_cuda_fp32_b1": _entry(2.5, 0.001, 0.004),
        }
    }
    verdicts = [line["verdict"] for line in gpu.goals(results)]
    assert verdicts[0] == "met" and "met" in verdicts[1:]
    assert gpu.keypoints_right({"median_px": float("nan"), "max_px": float("nan")}, "fp32") is False
