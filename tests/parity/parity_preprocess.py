"""parity_preprocess: salient's image decoding and preprocessing against PIL + torchvision.

Images are drawn here with PIL (RGB, gray, RGBA, palette, CMYK JPEG, progressive JPEG, EXIF
orientations, odd sizes such as 517x389) and run through `salient-run --preprocess-only`, which
decodes them as salientd does and applies a manifest's "preprocess" block. The reference takes
PIL's decoded pixels (ImageOps.exif_transpose, then .convert("RGB") / "L") and applies the
upstream transform to float tensors:

  chexnet   torchvision: ToTensor -> Resize(256, BILINEAR, antialias=True) -> CenterCrop(224)
            -> Normalize(ImageNet)
  swinchex  the same with BICUBIC
  xrv       torchxrayvision's steps: pixels to [-1024, 1024], mean of R, G, B, XRayCenterCrop,
            resize to 224 x 224. torchxrayvision resizes with skimage; the reference here uses
            torch's F.interpolate(bilinear, antialias=True) instead, which is what salient
            implements (skimage's resize filters differently and is not the target).
  decode    no resize: centre crop to the image's own size, range [0, 255], so `input` is the
            decoded pixels and must equal PIL's exactly.

The reference is salient_export.load.preprocess_pixels (shared with parity_end_to_end.py),
computed in float32, as a PyTorch user's pipeline runs. Errors are reported in
normalised units (the tensor the network sees); for xrv, whose units span [-1024, 1024], the
error is divided by 1024 first.
"""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from PIL import Image  # noqa: E402

from paritylib import RUN, Report, pattern, read_safetensors, to_pil  # noqa: E402
from salient_export import load  # noqa: E402  (paritylib put models/export on the path)

IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
CONFIGS = {
    "chexnet": dict(channels=3, resize_shorter=256, interpolation="bilinear", antialias=True,
                    center_crop=[224, 224], **IMAGENET),
    "swinchex": dict(channels=3, resize_shorter=256, interpolation="bicubic", antialias=True,
                     center_crop=[224, 224], **IMAGENET),
    "xrv": dict(channels=1, crop_square=True, resize=[224, 224], interpolation="bilinear", antialias=True,
                range=[-1024, 1024]),
}
TOL = {"chexnet": 1e-4, "swinchex": 1e-4, "xrv": 1e-4, "decode": 0.0}


def make_images(d):
    """Write the test images into d; return [(file name, PIL-only notes)]."""
    out = []

    def save(name, im, **kw):
        im.save(os.path.join(d, name), **kw)
        out.append(name)

    rgb = to_pil(pattern(517, 389, 3, 1), "RGB")
    save("rgb_517x389.png", rgb)
    save("rgb_517x389_q92.jpg", rgb, quality=92)
    save("gray_300x420.png", to_pil(pattern(300, 420, 1, 2), "L"))
    save("gray_401x299.jpg", to_pil(pattern(401, 299, 1, 3), "L"), quality=90)
    save("rgb_333x501_progressive.jpg", to_pil(pattern(333, 501, 3, 4), "RGB"), quality=85, progressive=True)
    rgba = to_pil(pattern(256, 300, 4, 5), "RGBA")
    save("rgba_256x300.png", rgba)
    save("gray_alpha_261x247.png", to_pil(pattern(261, 247, 2, 6), "LA"))
    pal = to_pil(pattern(211, 233, 3, 7), "RGB").quantize(colors=60)
    pal.info["transparency"] = 3
    save("palette_trns_211x233.png", pal, transparency=3)
    save("cmyk_260x240.jpg", to_pil(pattern(260, 240, 3, 8), "RGB").convert("CMYK"), quality=95)
    save("small_230x200.png", to_pil(pattern(230, 200, 3, 9), "RGB"))  # upscaled by resize_shorter 256
    base = to_pil(pattern(64, 40, 3, 10), "RGB")
    for o in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = o
        save("exif%d_64x40.jpg" % o, base, quality=95, exif=exif.tobytes())
    return out


def pil_pixels(path, channels):
    """PIL's decoded pixels as salient should see them: float32 [C, H, W] in 0..255."""
    return load.pixels(Image.open(path), channels)


def reference(path, cfg_name):
    """The upstream transform (salient_export.load.preprocess_pixels, shared with the other tests)."""
    cfg = CONFIGS[cfg_name]
    return load.preprocess_pixels(pil_pixels(path, cfg["channels"]), cfg)


def run_salient(tmp, tag, preprocess, images):
    """salient-run --preprocess-only on images with a manifest holding `preprocess`; returns 'input'."""
    model = os.path.join(tmp, "model-" + tag)
    os.makedirs(model, exist_ok=True)
    with open(os.path.join(model, "manifest.json"), "w") as f:
        json.dump({"family": "densenet", "labels": ["a"], "preprocess": preprocess}, f)
    out = os.path.join(tmp, "out-%s.safetensors" % tag)
    cmd = [RUN, "--model", model, "--preprocess-only", "--quiet", "--threads", "2", "--output", out]
    for im in images:
        cmd += ["--image", im]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("salient-run failed (%d): %s" % (r.returncode, r.stderr.strip()))
    return read_safetensors(out)[0]["input"]


def main():
    rep = Report("preprocess")
    with tempfile.TemporaryDirectory(prefix="salient-pre-") as tmp:
        names = make_images(tmp)
        paths = [os.path.join(tmp, n) for n in names]
        # Decoding: the pixels themselves, image by image (each gets a crop of its own size).
        for name, path in zip(names, paths):
            want = pil_pixels(path, 3)
            _, h, w = want.shape
            try:
                got = run_salient(tmp, "decode", {"channels": 3, "center_crop": [h, w], "range": [0, 255]}, [path])
            except RuntimeError as e:
                rep.fail("decode %s: %s" % (name, e))
                continue
            rep.close("decode %s" % name, got[0], want, TOL["decode"])
        # Preprocessing: every image through each configuration, all images in one run.
        results = {}
        pre_images = [(n, p) for n, p in zip(names, paths) if not n.startswith("exif") or n == "exif6_64x40.jpg"]
        for cfg_name, cfg in CONFIGS.items():
            try:
                got = run_salient(tmp, cfg_name, cfg, [p for _, p in pre_images])
            except RuntimeError as e:
                rep.fail("%s: %s" % (cfg_name, e))
                continue
            rep.check("%s output shape" % cfg_name, list(got.shape) == [len(pre_images), cfg["channels"], 224, 224],
                      str(list(got.shape)))
            scale = 1024.0 if cfg_name == "xrv" else 1.0
            for i, (name, path) in enumerate(pre_images):
                want = reference(path, cfg_name)
                rep.close("%s %s" % (cfg_name, name), got[i] / scale, want / scale, TOL[cfg_name])
            results[cfg_name] = got
        # The comparison can tell the filters apart: bilinear against the bicubic reference is far off.
        if "chexnet" in results:
            err = (results["chexnet"][0] - reference(pre_images[0][1], "swinchex")).abs().max().item()
            rep.check("bilinear output differs from the bicubic reference", err > 100 * TOL["swinchex"],
                      "max |err| %.3e" % err)
    rep.finish()


if __name__ == "__main__":
    main()
