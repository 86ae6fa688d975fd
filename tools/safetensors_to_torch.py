#!/usr/bin/env python3
"""Load an `acai export` safetensors file into the PyTorch port (../shared/peers/acai_torch.py) and check that
it reconstructs a batch as acai does.

    acai export --run runs/lines-acai                        # runs/lines-acai/model.safetensors
    acai encode --run runs/lines-acai --limit 64 --with-images --out /tmp/batch
    python3 tools/safetensors_to_torch.py runs/lines-acai/model.safetensors /tmp/batch

The batch folder holds acai's images.npy (NHWC inputs), latents.npy and reconstructions.npy. The script builds
the port's Enc/Dec with the file's config (acai.config metadata), copies every encoder/decoder tensor
(acai stores filters HWIO, PyTorch wants OIHW), runs the batch, and compares latents and reconstructions
with acai's (max absolute difference, tolerance --tol). Models whose code is the plain encoder output
only: acai, ae, dropout, denoising. Needs torch, numpy and safetensors; not run in CI.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
from safetensors import safe_open

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.environ.get("ACAI_SHARED", os.path.join(HERE, "..", "..", "shared")) + "/peers"
sys.path.insert(0, PEERS)
import acai_torch  # noqa: E402

PLAIN = {"acai", "ae", "dropout", "denoising"}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights", help="model.safetensors from acai export")
    p.add_argument("batch", help="folder from acai encode --with-images")
    p.add_argument("--tol", type=float, default=1e-4, help="largest allowed absolute difference")
    a = p.parse_args()

    with safe_open(a.weights, framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    kind = meta.get("acai.model")
    if kind not in PLAIN:
        sys.exit(f"{a.weights}: model kind {kind!r}; this script handles {sorted(PLAIN)}")
    net = json.loads(meta["acai.config"])["net"]
    scales = int(round(math.log2(net["width"] // net["latentWidth"])))
    enc = acai_torch.Enc(scales, net["depth"], net["latent"], net["colors"])
    dec = acai_torch.Dec(scales, net["depth"], net["latent"], net["colors"])
    used = set()
    for prefix, module in (("encoder", enc), ("decoder", dec)):
        for i, conv in enumerate(module.L):
            w, b = f"{prefix}/conv{i}/w", f"{prefix}/conv{i}/b"
            if w not in tensors or b not in tensors:
                sys.exit(f"{a.weights}: tensor {w if w not in tensors else b} missing")
            weight = tensors[w].permute(3, 2, 0, 1).contiguous()  # HWIO -> OIHW
            if weight.shape != conv.weight.shape:
                sys.exit(f"{a.weights}: tensor {w} is {tuple(tensors[w].shape)} (HWIO), the port wants {tuple(conv.weight.shape)} (OIHW)")
            with torch.no_grad():
                conv.weight.copy_(weight)
                conv.bias.copy_(tensors[b])
            used |= {w, b}
    print(f"loaded {len(used)} of {len(tensors)} tensors ({kind}; the rest belong to the probe/critic)")

    x = np.load(os.path.join(a.batch, "images.npy"))
    z_acai = np.load(os.path.join(a.batch, "latents.npy"))
    y_acai = np.load(os.path.join(a.batch, "reconstructions.npy"))
    with torch.no_grad():
        xt = torch.from_numpy(x).permute(0, 3, 1, 2)  # NHWC -> NCHW
        z = enc(xt)
        y = dec(z)
    z_nhwc = z.permute(0, 2, 3, 1).reshape(len(x), -1).numpy()
    y_nhwc = y.permute(0, 2, 3, 1).numpy()
    dz = float(np.abs(z_nhwc - z_acai).max())
    dy = float(np.abs(y_nhwc - y_acai).max())
    print(f"{len(x)} images: max |latent - acai's| = {dz:.3g}, max |reconstruction - acai's| = {dy:.3g} (tolerance {a.tol:g})")
    if dz > a.tol or dy > a.tol:
        sys.exit("MISMATCH")
    print("OK: PyTorch reconstructs the batch as acai does")


if __name__ == "__main__":
    main()
