#!/bin/bash
# The device checks prepared for the next session that is lent a GPU (issues 9 and 15), as one
# script of about 9 minutes. Before it, on the development machine (the tree must stay under the
# device tool's 64 MiB: move assets/screenshots, assets/models/ref-photos64, the dcgan64-clipart-ft
# and -seed1 weights and start networks out of the tree for the call, and put them back after):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 -d .whl diffusers==0.42.1 importlib_metadata lpips==0.1.4 pytorch-msssim==1.0.0
# then run `bash benchmarks/exploration/gpu_next.sh` on the device with carry [".whl"].
set -o pipefail
export PYTHONUNBUFFERED=1 RONAN_CACHE_DIR=/tmp/rc
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=$PWD:/tmp/site
L=$OUT/all.log
s() { echo "=== $(date +%T) $*" | tee -a $L; }
s env; nvidia-smi -L 2>&1 | tee -a $L
s "graph tests (DDIM tolerance and the current-shape graph not yet run on a GPU)"
timeout 60 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_hub_models.py -k cuda_graphs 2>&1 | tail -n 15 | tee -a $L
s "issue 9: larger start networks on fresh pairs"
timeout 300 python3 benchmarks/exploration/start_capacity.py resgan64-clipart cuda 100 thorough \
    "width=32,steps=2000,batch=64;width=64,steps=20000,batch=256;width=128,steps=20000,batch=256" 2>&1 | tee -a $L
s "issue 15: the consistency model end to end with graphs (both images) and the step times"
timeout 120 python3 benchmarks/hub_speed.py --device cuda --rows 1 --repeats 5 --models cm-imagenet64,ddpm-cifar10 \
    --end-to-end --model-only --graphs on 2>&1 | tee -a $L
s end
