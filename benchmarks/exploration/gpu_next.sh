#!/bin/bash
# The device checks prepared for the next session that is lent a GPU (issue 9), as one script of
# about 6 minutes. Session 27 ran the previous plan (the graph tests passed; larger start networks:
# benchmarks/RESULTS.md, "Larger start networks, trained on a GPU"). Before it, on the development
# machine (the tree must stay under the device tool's 64 MiB: move assets/screenshots, the
# dcgan64-clipart-ft and -seed1 weights and start networks out of the tree for the call — not
# ref-photos64, the 64x64 reference — and put them back after):
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
s "issue 9: retries on upgan64-clipart with its larger start network (thorough: 93-97 of 100)"
timeout 120 python3 benchmarks/exploration/convergence_retries.py upgan64-clipart 100 thorough 3 cuda 2>&1 | tee -a $L
s "issue 9: refine every candidate before the pick on resgan64-clipart (did not finish in 60 s in session 26)"
timeout 200 python3 benchmarks/convergence_sweep.py cuda 100 resgan64-clipart \
    "adam=100,cand=8,sig=0.3,pick=lm,lm=160;adam=100,cand=16,sig=0.3,pick=lm,lm=160" $OUT/sweep.json 2>&1 | tee -a $L
s "issue 9: the upgan64-clipart table with fast and its larger start network (CPU figure in RESULTS)"
timeout 60 python3 benchmarks/tier_tables.py --model upgan64-clipart --n 100 --others real-test --device cuda 2>&1 | tail -n 8 | tee -a $L
s end
