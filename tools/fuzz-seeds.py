#!/usr/bin/env python3
"""Builds the fuzz targets' seed corpora: small samples of the real files in shared/data (a few records each,
headers rewritten to match) and small variants of the files a training run writes (checkpoint.bin,
options.json, summary.json, PNGs). Standard library only.

    tools/fuzz-seeds.py --shared ../shared --run RUN_FOLDER --out .build-fuzz/corpus

A new target gets a seed_<name>(shared, run) function returning {file name: bytes} (Fuzz/README.md)."""
import argparse
import glob
import gzip
import json
import os
import struct
import zlib


def read(path, limit=None):
    with open(path, "rb") as f:
        return f.read() if limit is None else f.read(limit)


def idx_prefix(path, count):
    """The first `count` examples of an IDX file, with the header's first dimension set to `count`."""
    raw = gzip.decompress(read(path)) if path.endswith(".gz") else read(path)
    ndim = raw[3]
    dims = list(struct.unpack(">%dI" % ndim, raw[4:4 + 4 * ndim]))
    per = 1
    for d in dims[1:]:
        per *= d
    dims[0] = count
    return raw[:4] + struct.pack(">%dI" % ndim, *dims) + raw[4 + 4 * ndim:4 + 4 * ndim + count * per]


def idx_samples(shared):
    out = {}
    for folder in ("mnist", "fashion-mnist"):
        for kind in ("images-idx3", "labels-idx1"):
            path = os.path.join(shared, "data", folder, "t10k-%s-ubyte" % kind)
            if os.path.exists(path):
                out["%s-%s" % (folder, kind)] = idx_prefix(path, 4)
    return out


def seed_idx(shared, run):
    return idx_samples(shared)


def seed_idx_gz(shared, run):
    out = {name + ".gz": gzip.compress(data, mtime=0) for name, data in idx_samples(shared).items()}
    if out:  # two gzip members one after the other, and trailing zero padding (both accepted)
        first = next(iter(out.values()))
        out["two-members.gz"] = first + gzip.compress(b"\0" * 16, mtime=0)
        out["zero-padded.gz"] = first + b"\0" * 8
    return out


def mat_element(kind, payload, big):
    e = ">" if big else "<"
    return struct.pack(e + "II", kind, len(payload)) + payload + b"\0" * (-len(payload) % 8)


def mat_matrix(name, class_id, dims, kind, values, big):
    e = ">" if big else "<"
    body = mat_element(6, struct.pack(e + "II", class_id, 0), big)
    body += mat_element(5, struct.pack(e + "%di" % len(dims), *dims), big)
    body += mat_element(1, name.encode(), big)
    body += mat_element(kind, values, big)
    return mat_element(14, body, big)


def mat_file(images, labels, big=False, compressed=False):
    """A MATLAB v5 MAT-file of X (32x32x3xN uint8, column-major) and y (Nx1 double), as SVHN's."""
    n = len(labels)
    x = mat_matrix("X", 9, [32, 32, 3, n], 2, images, big)
    y = mat_matrix("y", 6, [n, 1], 9, struct.pack((">" if big else "<") + "%dd" % n, *labels), big)
    text = b"MATLAB 5.0 MAT-file, written by tools/fuzz-seeds.py".ljust(116, b" ")
    header = text + b"\0" * 8 + (b"\x01\x00MI" if big else b"\x00\x01IM")
    if compressed:
        return header + b"".join(struct.pack("<II", 15, len(z)) + z for z in (zlib.compress(x), zlib.compress(y)))
    return header + x + y


def seed_mat(shared, run):
    # Real pixels: two CIFAR-10 records laid out as MATLAB's column-major 32x32x3xN.
    records = cifar_records(shared, 2)
    if not records:
        return {}
    images = bytearray(32 * 32 * 3 * len(records))
    for k, record in enumerate(records):
        for ch in range(3):
            for i in range(32):
                for j in range(32):
                    images[i + 32 * (j + 32 * (ch + 3 * k))] = record[1 + ch * 1024 + i * 32 + j]
    labels = [r[0] + 1 for r in records]
    out = {"svhn-le.mat": mat_file(bytes(images), labels), "svhn-be.mat": mat_file(bytes(images), labels, big=True),
           "svhn-compressed.mat": mat_file(bytes(images), labels, compressed=True)}
    real = os.path.join(shared, "data", "substitute-mnistm-svhn-format", "test_32x32.mat")
    if os.path.exists(real):
        out["real-header.mat"] = read(real, 512)  # the real file's header and first tags (truncated)
    return out


def cifar_records(shared, count):
    paths = sorted(glob.glob(os.path.join(shared, "data", "*", "cifar-10-batches-bin", "test_batch.bin")))
    return [read(paths[0])[k * 3073:(k + 1) * 3073] for k in range(count)] if paths else []


def seed_cifar(shared, run):
    out = {}
    for path in sorted(glob.glob(os.path.join(shared, "data", "*", "cifar-10-batches-bin", "*_batch*.bin")))[:3]:
        out[os.path.basename(os.path.dirname(os.path.dirname(path))) + "-" + os.path.basename(path)] = read(path, 2 * 3073)
    return out


def seed_png(shared, run):
    out = {}
    for path in sorted(glob.glob(os.path.join(shared, "golden", "lines", "cases", "*.png"))):
        if os.path.getsize(path) <= 16384:
            out["golden-" + os.path.basename(path)] = read(path)
    for path in sorted(glob.glob(os.path.join(run, "*.png"))):
        if os.path.getsize(path) <= 32768:
            out["run-" + os.path.basename(path)] = read(path)
    return out


def seed_jpeg(shared, run):
    paths = sorted(glob.glob(os.path.join(shared, "data", "substitute-celeba-format", "img_align_celeba", "*.jpg")))
    return {os.path.basename(p): read(p) for p in paths[:2]}


def fnv1a(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def seed_checkpoint(shared, run):
    """The run's checkpoint header with its tensors cut down to one of 4 values (a valid file of ~1 KB)."""
    path = os.path.join(run, "checkpoint.bin")
    if not os.path.exists(path):
        return {}
    data = read(path)
    length = struct.unpack("<Q", data[8:16])[0]
    header = json.loads(data[16:16 + length])
    values = data[16 + length:16 + length + 16]
    header["tensors"] = [{"name": header["tensors"][0]["name"], "shape": [4]}]
    header["valuesHash"] = fnv1a(values)
    text = json.dumps(header, separators=(",", ":")).encode()
    return {"small-checkpoint.bin": b"ACAICKPT" + struct.pack("<Q", len(text)) + text + values}


def seed_json(shared, run):
    return {name: read(os.path.join(run, name)) for name in ("options.json", "summary.json")
            if os.path.exists(os.path.join(run, name))}


def safetensors_file(tensors, metadata):
    """A safetensors file: 8-byte little-endian header length, JSON header padded with spaces to 8 bytes, data."""
    header, data = {"__metadata__": metadata}, b""
    for name, shape, values in tensors:
        raw = struct.pack("<%df" % len(values), *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def seed_safetensors(shared, run):
    return {
        "two.safetensors": safetensors_file([("encoder/conv0/w", [1, 1, 1, 2], [0.5, -1.0]),
                                             ("encoder/conv0/b", [2], [0.0, 0.25])], {"acai.model": "ae"}),
        "empty.safetensors": safetensors_file([], {}),
    }


def npy_file(descr, shape, payload):
    """A .npy v1.0 file: magic, version, header length, the header dictionary padded to 64 bytes, data."""
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (
        descr, ", ".join(map(str, shape)) + ("," if len(shape) == 1 else ""))
    header += " " * (-(len(header) + 11) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + payload


def seed_npy(shared, run):
    return {
        "latents.npy": npy_file("<f4", [2, 3], struct.pack("<6f", 0.5, 1, 2, 3, -1, 0)),
        "labels.npy": npy_file("<i8", [3], struct.pack("<3q", 1, 7, 3)),
    }


def folder_cache(size, channels, classes, train, test, labelled):
    """An image folder's cache: 'ACAIFOLD', key, header length, JSON header, int32 labels, 8-bit pixels."""
    header = json.dumps({"size": size, "channels": channels, "classes": classes, "trainCount": train,
                         "testCount": test, "skipped": ["broken.png"], "labelled": labelled}).encode()
    labels = struct.pack("<%di" % (train + test), *[i % classes for i in range(train + test)]) if labelled else b""
    pixels = bytes((i * 37) % 256 for i in range((train + test) * size * size * channels))
    return b"ACAIFOLD" + struct.pack("<QQ", 0x1234_5678_9ABC_DEF0, len(header)) + header + labels + pixels


def seed_folder_cache(shared, run):
    return {
        "labelled.bin": folder_cache(4, 3, 2, 3, 1, True),
        "unlabelled.bin": folder_cache(2, 1, 1, 2, 2, False),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", required=True)
    parser.add_argument("--run", required=True, help="a training run's folder (files the trainer writes)")
    parser.add_argument("--out", required=True)
    parser.add_argument("targets", nargs="*")
    args = parser.parse_args()
    for target in args.targets:
        seeds = globals()["seed_" + target.replace("-", "_")](args.shared, args.run)
        folder = os.path.join(args.out, target)
        os.makedirs(folder, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(folder, "seed-" + name), "wb") as f:
                f.write(data)
        print("%-11s %2d seed files, %7d bytes" % (target, len(seeds), sum(map(len, seeds.values()))))


if __name__ == "__main__":
    main()
