"""Put ONNX Runtime behind the CUDA double in every process of a command under test.

Python imports ``sitecustomize`` at every start-up when its folder is on ``PYTHONPATH``; the
device-double tests put this folder there and set ``DEEPLABSTREAM_CUDA_DOUBLE`` (its words are
the double's knobs, ``ort_cuda_double.Knobs``), so that the command *and every process it
spawns* (they inherit the environment) see onnxruntime-gpu on a GPU. Unset, nothing changes and
onnxruntime is not even imported.
"""

from __future__ import annotations

import os

if os.environ.get("DEEPLABSTREAM_CUDA_DOUBLE") is not None:
    from ort_cuda_double import install_from_env  # beside this file

    install_from_env()
