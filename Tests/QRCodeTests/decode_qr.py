"""Decodes every PNG (and SVG) in a folder with zxing-cpp and prints {file: text} as JSON.

The Swift QR tests use it as an independent decoder: python3 decode_qr.py FOLDER"""
import io
import json
import pathlib
import sys


def main():
    try:
        import zxingcpp
        from PIL import Image
    except ImportError as error:
        print(f"missing Python package: {error.name}; pip install zxing-cpp pillow cairosvg, or run scripts/test", file=sys.stderr)
        sys.exit(3)
    folder = pathlib.Path(sys.argv[1])
    results = {}
    for path in sorted(folder.iterdir()):
        if path.suffix == ".png":
            image = Image.open(path)
        elif path.suffix == ".svg":
            import cairosvg
            png = cairosvg.svg2png(url=str(path), background_color="white", output_width=800)
            image = Image.open(io.BytesIO(png))
        else:
            continue
        found = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
        results[path.name] = found[0].text if found else None
    print(json.dumps(results, ensure_ascii=False))


if __name__ == "__main__":
    main()
