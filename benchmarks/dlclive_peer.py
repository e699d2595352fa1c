"""DeepLabCut-Live's side of ``benchmarks/dlc_model.py``, run with DeepLabCut-Live's own Python.

    DLCLIVE_PYTHON benchmarks/dlclive_peer.py MODEL VIDEO --threads T

Imports nothing of this project (its environment has DeepLabCut-Live 1.1, PyTorch and PyAV,
``../shared/peers/dlclive/SETUP.md``). It builds ``DLCLive(MODEL, model_type="pytorch",
device="cpu", precision="FP32", single_animal=True)`` as ``../shared/peers/dlclive/
dlclive_bench.py`` does, runs ``init_inference`` on the first frame, prints one JSON line
(versions, ``ready``), then answers commands on standard input, one JSON line each:

- ``block START COUNT``: one untimed ``get_pose`` on clip frame START, then COUNT timed ones on
  frames START, START+1, ... (cycled); the answer holds the seconds of each and the poses;
- ``quit``: exit.

So the benchmark can interleave DeepLabCut-Live with the project's variants block by block:
other load on the machine then affects both alike.
"""

import argparse
import json
import sys
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("video")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import av
    import cv2
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    import dlclive
    from dlclive import DLCLive

    with av.open(args.video) as container:
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    live = DLCLive(
        args.model, model_type="pytorch", device="cpu", precision="FP32", single_animal=True
    )
    started = time.perf_counter()
    live.init_inference(frames[0])
    hello = {
        "ready": True,
        "tool": "DeepLabCut-Live get_pose",
        "dlclive_version": dlclive.__version__,
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "clip_frames": len(frames),
        "init_inference_s": round(time.perf_counter() - started, 3),
    }
    print(json.dumps(hello), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        start, count = int(words[1]), int(words[2])
        live.get_pose(frames[start % len(frames)])  # untimed: the switch from the other side
        seconds, poses = [], []
        for index in range(start, start + count):
            began = time.perf_counter()
            pose = live.get_pose(frames[index % len(frames)])
            seconds.append(time.perf_counter() - began)
            poses.append(np.asarray(pose, dtype=np.float64).reshape(-1, 3).tolist())
        print(json.dumps({"seconds": seconds, "poses": poses}), flush=True)


if __name__ == "__main__":
    main()
