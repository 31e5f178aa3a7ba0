#!/usr/bin/env python3
"""make_seeds.py: writes the seed corpora under tests/fuzz/corpus/ (standard library only).

Run from anywhere: python3 tests/fuzz/make_seeds.py. JPEG seeds are not made here (no JPEG
encoder in the standard library): corpus/decode_image/*.jpg were written once with
libjpeg-turbo's tjCompress2 (8x6 4:2:0, 5x3 gray, 9x7 4:4:4 progressive, 4x4 CMYK) and the EXIF
variants below are made from them by inserting an APP1 segment. Regression inputs
(regress-*) are kept as the fuzzers found them and are never rewritten.
"""
import base64
import json
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- images -------------------------------------------------------------------------------

def png(w, h, color_type, depth, rows, interlace=0, extra=b""):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, interlace)
    raw = b"".join(b"\0" + r for r in rows)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def png_chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def exif_app1(orientation, little=True):
    e = "<" if little else ">"
    tiff = (b"II*\0" if little else b"MM\0*") + struct.pack(e + "I", 8)
    tiff += struct.pack(e + "H", 1) + struct.pack(e + "HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(e + "I", 0)
    body = b"Exif\0\0" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body


def images():
    put("decode_image", "gray8.png", png(3, 2, 0, 8, [b"\x00\x80\xff", b"\x10\x20\x30"]))
    put("decode_image", "gray1.png", png(9, 1, 0, 1, [b"\xa5\x80"]))
    put("decode_image", "gray16.png", png(2, 1, 0, 16, [b"\x12\x34\xab\xcd"]))
    put("decode_image", "rgb8.png", png(2, 2, 2, 8, [bytes(range(6)), bytes(range(6, 12))]))
    put("decode_image", "rgba16.png", png(1, 1, 6, 16, [bytes(range(8))]))
    put("decode_image", "graya8.png", png(2, 1, 4, 8, [b"\x40\xff\x80\x00"]))
    plte = png_chunk(b"PLTE", b"\xff\x00\x00\x00\xff\x00\x00\x00\xff") + png_chunk(b"tRNS", b"\x00")
    put("decode_image", "palette4.png", png(3, 1, 3, 4, [b"\x01\x20"], extra=plte))
    put("decode_image", "interlaced.png", png(3, 3, 2, 8, [bytes(9)] * 3, interlace=1))
    # JPEG EXIF variants from the committed tjCompress2 output.
    # Every orientation 2..8, RGB and gray, both byte orders.
    jpgs = {}
    for base in ("rgb420", "gray"):
        src = os.path.join(CORPUS, "decode_image", base + ".jpg")
        if os.path.exists(src):
            jpgs[base] = open(src, "rb").read()
    for o in range(2, 9):
        base = "rgb420" if o in (3, 6, 8) else "gray"
        if base in jpgs:
            jpg, le = jpgs[base], o % 2 == 0
            put("decode_image", "exif%d-%s%s.jpg" % (o, "le" if le else "be", "-gray" if base == "gray" else ""),
                jpg[:2] + exif_app1(o, little=le) + jpg[2:])


# ---- request bodies -----------------------------------------------------------------------

def requests():
    tiny = base64.b64encode(png(1, 1, 0, 8, [b"\x80"])).decode()
    put("request_json", "v1-image.json", json.dumps({"image": tiny}))
    put("request_json", "v1-data-uri.json", json.dumps({"image": "data:image/png;base64," + tiny}))
    put("request_json", "v1-instances.json", json.dumps(
        {"instances": [{"image": tiny}, tiny],
         "parameters": {"top_k": 3, "attention": "maps", "attention_layers": ["denseblock3", "denseblock4"],
                        "cam_labels": ["Effusion"]}}))
    put("request_json", "v1-faces.json", json.dumps(
        {"image": tiny, "parameters": {"detector": "tiny_face_detector", "score_threshold": 0.5,
                                       "iou_threshold": 0.3, "max_faces": 10, "input_size": 416,
                                       "tasks": ["landmarks", "age_gender", "expression", "descriptor"],
                                       "tiny_landmarks": True}}))
    put("request_json", "v2-infer.json", json.dumps(
        {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2], "data": [tiny, tiny]}],
         "parameters": {"attention": "png"}}))
    put("request_json", "verify.json", json.dumps(
        {"images": [tiny, tiny], "model": "faces", "threshold": 0.6, "parameters": {"detector": "ssd_mobilenetv1"}}))
    put("request_json", "bad-unknown-field.json", '{"image": "aGk=", "extra": 1}')


def multipart():
    tiny = png(1, 1, 0, 8, [b"\x80"])
    b = "X-salient-boundary"
    body = ("--%s\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.png\"\r\n"
            "Content-Type: image/png\r\n\r\n" % b).encode() + tiny + (
        "\r\n--%s\r\nContent-Disposition: form-data; name=\"parameters\"\r\n\r\n{\"top_k\": 2}\r\n--%s--\r\n"
        % (b, b)).encode()
    put("multipart", "curl-image-params", ("multipart/form-data; boundary=%s\n" % b).encode() + body)
    put("multipart", "quoted-boundary-lf", b'multipart/form-data; charset=utf-8; boundary="q b"\n'
        b"preamble\n--q b\nContent-Disposition: form-data;\n name=image; filename=\"C:\\dir\\x.png\"\n\nabc\n"
        b"--q b--\nepilogue")
    put("multipart", "verify-threshold", ("multipart/form-data; boundary=b\n").encode() +
        b"--b\r\nContent-Disposition: form-data; name=image\r\n\r\n" + tiny +
        b"\r\n--b\r\nContent-Disposition: form-data; name=image\r\n\r\n" + tiny +
        b"\r\n--b\r\nContent-Disposition: form-data; name=threshold\r\n\r\n0.5\r\n--b--\r\n")
    put("multipart", "empty-form", b"multipart/form-data; boundary=zz\n--zz--\r\n")


def base64s():
    put("base64", "plain", "aGVsbG8gd29ybGQ=")
    put("base64", "data-uri", "data:image/png;base64,iVBORw0KGgo=")
    put("base64", "data-params", "DATA:Image/JPEG;name=x.jpg;BASE64,/9j/4A==")
    put("base64", "urlsafe-nopad", "-_-_ab\r\n cd\tZg")
    put("base64", "mime-lines", "QUJD" * 19 + "\r\n" + "REVG" * 3 + "\n")
    put("base64", "bad-padding", "Zg=a")


# ---- checkpoints and manifests --------------------------------------------------------------

def safetensors(header, data):
    h = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(h)) + h + data


def checkpoints():
    f32 = struct.pack("<6f", *[0.5 * i for i in range(6)])
    f16 = struct.pack("<4H", 0x3c00, 0x8001, 0x7c00, 0x7e01)
    bf16 = struct.pack("<2H", 0x3f80, 0xc000)
    i64 = struct.pack("<q", -7)
    hdr = {"__metadata__": {"format": "pt"},
           "a.weight": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
           "b.half": {"dtype": "F16", "shape": [4], "data_offsets": [24, 32]},
           "c.bf": {"dtype": "BF16", "shape": [1, 2], "data_offsets": [32, 36]},
           "d.idx": {"dtype": "I64", "shape": [], "data_offsets": [36, 44]},
           "e.empty": {"dtype": "F32", "shape": [0, 5], "data_offsets": [44, 44]}}
    put("safetensors", "mixed.safetensors", safetensors(hdr, f32 + f16 + bf16 + i64))
    # corpus/safetensors/regress-empty-header-qsort-null is safetensors({}, b"") (kept as found).
    put("safetensors", "overlap.safetensors", safetensors(
        {"x": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
         "y": {"dtype": "BOOL", "shape": [2], "data_offsets": [2, 4]}}, b"\1\2\3\4"))


def tfjs():
    man = [{"paths": ["a.bin", "b.bin"], "weights": [
        {"name": "conv0/filters", "shape": [1, 1, 2, 2], "dtype": "float32"},
        {"name": "conv0/bias", "shape": [2], "dtype": "float32",
         "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}},
        {"name": "fc/weights", "shape": [2, 1], "dtype": "float32",
         "quantization": {"dtype": "uint16", "scale": 0.001, "min": 0}},
        {"name": "fc/half", "shape": [2], "dtype": "float32", "quantization": {"dtype": "float16"}},
        {"name": "idx", "shape": [1], "dtype": "int32"},
        {"name": "qidx", "shape": [2], "dtype": "int32",
         "quantization": {"dtype": "uint8", "scale": 1.5, "min": 2}}]}]
    data = struct.pack("<4f", 1, -2, 3.5, 0) + b"\x00\xff" + struct.pack("<2H", 1, 65535) + \
        struct.pack("<2H", 0x3c00, 0xfc00) + struct.pack("<i", -3) + b"\x01\x02"
    put("tfjs_manifest", "all-dtypes", json.dumps(man).encode() + b"\0" + data)
    man2 = [{"paths": ["a.bin"], "weights": [{"name": "w", "shape": [3], "dtype": "float32"}]},
            {"paths": ["b.bin"], "weights": [{"name": "v", "shape": [1], "dtype": "float32"}]}]
    put("tfjs_manifest", "two-groups", json.dumps(man2).encode() + b"\0" + struct.pack("<4f", 1, 2, 3, 4) * 2)
    put("tfjs_manifest", "escape", json.dumps([{"paths": ["../x.bin"], "weights": []}]).encode() + b"\0")


def manifests():
    repo = os.path.join(HERE, "..", "..", "models", "repo")
    for name in sorted(os.listdir(repo)):
        p = os.path.join(repo, name, "manifest.json")
        if os.path.exists(p):
            put("manifest", name + ".json", open(p, "rb").read())
    put("manifest", "minimal.json", '{"family": "resnet", "labels": ["a", "b"], "demo": true, '
        '"batching": {"max_batch_size": 2, "max_queue_delay_us": 100, "max_queue_size": 4}}')


if __name__ == "__main__":
    images()
    requests()
    multipart()
    base64s()
    checkpoints()
    tfjs()
    manifests()
