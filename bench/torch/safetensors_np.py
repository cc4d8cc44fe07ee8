"""Tiny pure-numpy safetensors reader/writer (no `safetensors` package needed).

Format (https://github.com/huggingface/safetensors):
    8 bytes   little-endian u64 N = header length
    N bytes   UTF-8 JSON: {name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
                           optional "__metadata__": {str: str}}
    rest      raw little-endian tensor bytes; offsets are relative to the end of the header.

Usage:
    from safetensors_np import load, save
    tensors, metadata = load("file.safetensors")       # dict name -> np.ndarray, dict or None
    save("out.safetensors", {"x": np.zeros((2, 3), np.float32)}, metadata={"k": "v"})

Run `python3 safetensors_np.py FILE` to list the tensors of a file.
"""
import json
import struct
import sys

import numpy as np

_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
    "U64": np.uint64, "U32": np.uint32, "U16": np.uint16, "U8": np.uint8,
    "BOOL": np.bool_,
}
_NAMES = {np.dtype(v).newbyteorder("<"): k for k, v in _DTYPES.items()}


def load(path):
    """Return (tensors, metadata): tensors maps name -> np.ndarray (a copy, writable)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError(f"{path}: header length {n} beyond end of file")
    header = json.loads(data[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", None)
    base = 8 + n
    out = {}
    for name, info in header.items():
        dt = info["dtype"]
        if dt not in _DTYPES:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {dt}")
        b, e = info["data_offsets"]
        shape = tuple(info["shape"])
        arr = np.frombuffer(data, dtype=np.dtype(_DTYPES[dt]).newbyteorder("<"),
                            count=int(np.prod(shape, dtype=np.int64)), offset=base + b)
        if arr.nbytes != e - b:
            raise ValueError(f"{path}: tensor {name}: {e - b} bytes for shape {shape} {dt}")
        out[name] = arr.reshape(shape).astype(_DTYPES[dt])  # native byte order, owns its memory
    return out, metadata


def save(path, tensors, metadata=None):
    """Write dict name -> array-like (numpy or torch CPU tensor) to `path`."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        if hasattr(t, "detach"):  # torch tensor
            t = t.detach().cpu().numpy()
        a = np.array(t, order="C", copy=False)  # (ascontiguousarray would turn 0-d into 1-d)
        le = a.dtype.newbyteorder("<")
        if le not in _NAMES:
            raise ValueError(f"tensor {name}: unsupported dtype {a.dtype}")
        raw = a.astype(le, copy=False).tobytes()
        header[name] = {"dtype": _NAMES[le], "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)  # pad so the data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for raw in blobs:
            f.write(raw)


if __name__ == "__main__":
    for p in sys.argv[1:]:
        ts, md = load(p)
        print(f"{p}: {len(ts)} tensors, metadata={md}")
        for k in sorted(ts):
            v = ts[k]
            print(f"  {k:40s} {str(v.dtype):8s} {list(v.shape)}")
