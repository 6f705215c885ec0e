"""Copy a GGUF with changes, for tests that need a subtly different or broken
file: rewrite(src, dst, key=fn, tensor=fn).

key(name, value) returns the value to write, or None to drop the key;
tensor(name, array) returns the array to write (raw bytes or elements, as
gguf.GGUFReader gives them), or a (array, raw_dtype) pair to change the type.
Arrays are written with their element type, so a u16 array stays u16.
"""
import gguf
import numpy as np


def rewrite(src, dst, key=None, tensor=None, arch=None):
    r = gguf.GGUFReader(src)
    arch = arch or r.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(dst, arch)
    for f in r.fields.values():
        if f.name.startswith("GGUF.") or f.name == "general.architecture":
            continue
        value = f.contents()
        if key is not None:
            value = key(f.name, value)
            if value is None:
                continue
        t = f.types
        if t[0] == gguf.GGUFValueType.ARRAY:
            w.add_key_value(f.name, value, t[0], sub_type=t[-1])
        else:
            w.add_key_value(f.name, value, t[0])
    for t in r.tensors:
        data, dtype = np.array(t.data), t.tensor_type
        if tensor is not None:
            out = tensor(t.name, data)
            data, dtype = out if isinstance(out, tuple) else (out, dtype)
        w.add_tensor(t.name, data, raw_dtype=dtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
